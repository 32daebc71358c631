import { join } from 'node:path';
import { readTrustedFile, writeFileAtomic } from '../sys/fsx.js';
import { paths } from '../state/paths.js';

// Processes `nsroute move` took into a cgroup-mode NAME, with the cgroup each came from
// (`move --out` puts them back there). In the run dir beside NAME's state, root's alone.
export interface MoveRecord {
  pid: number;
  startTime: number;
  from: string; // relative to the cgroup v2 mount ('' = its root)
}

export function movesPath(name: string): string {
  return join(paths.nsDir(name), 'moves.json');
}

export function readMoves(name: string): MoveRecord[] {
  try {
    const list = JSON.parse(readTrustedFile(movesPath(name)) ?? '[]') as unknown;
    return Array.isArray(list) ? (list as MoveRecord[]).filter((m) => typeof m?.pid === 'number' && typeof m.from === 'string') : [];
  } catch {
    return [];
  }
}

export function writeMoves(name: string, moves: readonly MoveRecord[]): void {
  writeFileAtomic(movesPath(name), JSON.stringify(moves), 0o600);
}
