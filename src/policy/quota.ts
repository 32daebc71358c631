import { parse as parseToml } from 'smol-toml';
import { UserError } from '../errors.js';
import { idsConfPath } from '../sys/ids.js';
import { QUOTA_KEYS } from '../net/ids.js';
import { readTrustedText } from '../sys/trusted-file.js';

// Keys of /etc/nsroute/nsroute.conf for users who enter through sudo (net/ids.ts leaves them
// to this file): how many NAMEs one user may hold at once, and how many exec/shell commands.

export interface Quota {
  namespaces: number;
  commands: number;
}
export const DEFAULT_QUOTA: Quota = { namespaces: 4, commands: 32 };

export function parseQuota(text: string, file: string): Quota {
  const doc = parseToml(text) as Record<string, unknown>;
  const q: Quota = { ...DEFAULT_QUOTA };
  for (const key of QUOTA_KEYS) {
    const v = doc[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 4096) {
      throw new UserError(`${file}: ${key} must be an integer from 0 to 4096`, `e.g. ${key} = 4`);
    }
    if (key === 'user_namespaces') q.namespaces = v;
    else q.commands = v;
  }
  return q;
}

export function readQuota(): Quota {
  const file = idsConfPath();
  const text = readTrustedText(file, 'nsroute.conf');
  return text === undefined ? DEFAULT_QUOTA : parseQuota(text, file);
}

// What the user already holds: NAMEs (other than the one asked for) and commands running.
export function quotaProblem(q: Quota, held: { names: string[]; commands: number }, name: string): string | undefined {
  const others = held.names.filter((n) => n !== name);
  if (!held.names.includes(name) && others.length >= q.namespaces) {
    return `you already hold ${others.length} namespace(s) (${others.join(', ')}), the most one user may (user_namespaces = ${q.namespaces})`;
  }
  if (held.commands >= q.commands) return `you already run ${held.commands} nsroute command(s), the most one user may (user_commands = ${q.commands})`;
  return undefined;
}
