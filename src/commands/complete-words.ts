// `nsroute __complete KIND`: the words shell completion offers for a NAME, an interface, a
// bridge or a unit, one a line. Called at every TAB, so it only lists directories: no root
// needed (unreadable directories just give fewer words), no spawn, no lock, no kernel query.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { configDir, runDir } from '../state/paths.js';

export const DYNAMIC_KINDS = ['name', 'iface', 'bridge', 'unit', 'attached-unit'] as const;
export type DynamicKind = (typeof DYNAMIC_KINDS)[number];

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];
const unitDir = () => process.env.NSROUTE_UNIT_DIR || '/etc/systemd/system';

export function completionWords(kind: string): string[] {
  if (!(DYNAMIC_KINDS as readonly string[]).includes(kind)) return [];
  let out: string[];
  switch (kind as DynamicKind) {
    case 'name':
      // Profiles, and namespaces that are up (also those started with flags only).
      out = [...list(configDir()).filter((f) => f.endsWith('.toml') && f !== 'nsroute.toml').map((f) => f.slice(0, -5)), ...list(join(runDir(), 'ns'))];
      break;
    case 'iface':
      out = list('/sys/class/net');
      break;
    case 'bridge':
      out = list('/sys/class/net').filter((i) => existsSync(join('/sys/class/net', i, 'bridge')));
      break;
    case 'unit':
      out = UNIT_DIRS.flatMap(list).filter((u) => u.endsWith('.service') && !u.includes('@') && !u.startsWith('nsroute-')).map((u) => u.slice(0, -8));
      break;
    case 'attached-unit':
      out = list(unitDir())
        .filter((d) => d.endsWith('.service.d') && list(join(unitDir(), d)).some((f) => /^nsroute-.+\.conf$/.test(f)))
        .map((d) => d.slice(0, -10));
      break;
  }
  return [...new Set(out)].sort();
}

// The hidden `nsroute __complete KIND` (cli.ts imports this file alone for it).
export function runComplete(kind: string): number {
  const words = completionWords(kind);
  if (words.length) process.stdout.write(words.join('\n') + '\n');
  return 0;
}
