import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { ensureLibDir } from '../state/dirs.js';
import { appendLineSync } from '../sys/fsx.js';
import type { CallerContext } from './context.js';

export const auditLogPath = (dir: string): string => join(dir, 'audit.log');

// One line per privileged action a user asked for through sudo: who, which command, which
// NAME, allowed or refused, and why. Into a root-only log in the lib dir (0600, never through
// a symlink) and to syslog/the journal by `logger -t nsroute` (best effort: a machine without
// a syslog socket still has the log file).
export function auditLine(c: CallerContext, verb: string, name: string | undefined, outcome: 'allowed' | 'refused', why: string): string {
  const clean = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');
  return `user=${clean(c.name)} uid=${c.uid} command=${clean(verb)} name=${name === undefined ? '-' : clean(name)} ${outcome}: ${clean(why)}`;
}

export async function audit(c: CallerContext, verb: string, name: string | undefined, outcome: 'allowed' | 'refused', why: string): Promise<void> {
  const line = auditLine(c, verb, name, outcome, why);
  try {
    appendLineSync(auditLogPath(ensureLibDir()), `${new Date().toISOString()} ${line}`);
  } catch (e) {
    // A refusal stands even when it cannot be logged; an allowed action needs its line.
    if (outcome === 'allowed') throw e;
  }
  await new Promise<void>((resolve) => {
    const p = spawn('logger', ['-t', 'nsroute', '-p', 'authpriv.notice', '--', line], { stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    p.on('error', () => resolve());
    p.on('close', () => resolve());
  });
}
