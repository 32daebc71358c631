import { readFileSync } from 'node:fs';
import type { NamespaceConfig } from '../plan/types.js';
import { listDir, removeIfExists, writeFileAtomic } from '../sys/fsx.js';
import { paths } from './paths.js';

// A process using the namespace: pid + start time (pids are reused; the pair is not).
export interface Holder {
  pid: number;
  startTime: number;
  command: string[];
  user: string;
  since: string;
}

export type Status = 'creating' | 'up' | 'tearing-down';

export interface NamespaceState {
  version: 1;
  name: string;
  status: Status;
  persistent: boolean;
  createdAt: string;
  bootId: string;
  config: NamespaceConfig;
  holders: Holder[];
}

export function readState(name: string): NamespaceState | undefined {
  try {
    return JSON.parse(readFileSync(paths.state(name), 'utf8')) as NamespaceState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`state file ${paths.state(name)} is unreadable: ${(e as Error).message}`);
  }
}

export function writeState(state: NamespaceState): void {
  writeFileAtomic(paths.state(state.name), JSON.stringify(state, null, 2) + '\n', 0o644);
}

// Names with any state under the run dir (a state file or just a journal left by a crash).
export function knownNames(): string[] {
  return listDir(paths.nsRoot()).sort();
}

export function allStates(): NamespaceState[] {
  return knownNames().flatMap((n) => {
    const s = readState(n);
    return s ? [s] : [];
  });
}

export function removeNamespaceDir(name: string): void {
  removeIfExists(paths.nsDir(name));
}

// Host-wide facts nsroute must put back when its last namespace goes.
export interface HostState {
  forwarding?: { saved: Record<string, string> };
}

export function readHostState(): HostState {
  try {
    return JSON.parse(readFileSync(paths.host(), 'utf8')) as HostState;
  } catch {
    return {};
  }
}

export function writeHostState(h: HostState): void {
  if (Object.keys(h).length === 0) removeIfExists(paths.host());
  else writeFileAtomic(paths.host(), JSON.stringify(h, null, 2) + '\n');
}
