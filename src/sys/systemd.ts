import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { readTextIfExists } from './fsx.js';
import { run } from './run.js';

// Where units go: /etc/systemd/system, or NSROUTE_UNIT_DIR (tests, staging a system image).
export function unitDir(): string {
  return process.env.NSROUTE_UNIT_DIR || '/etc/systemd/system';
}

// systemd is the running init and the units go where it reads them: only then does nsroute
// run systemctl itself. Otherwise it writes the files and says what to run.
export function systemdManages(): boolean {
  return !process.env.NSROUTE_UNIT_DIR && existsSync('/run/systemd/system');
}

export async function systemctl(args: readonly string[]): Promise<void> {
  await run(['systemctl', ...args]);
}

// The nsroute that is running now, as an absolute command line (node + script): what a unit
// must run, whatever PATH systemd has.
export function nsrouteCommand(): string[] {
  const script = process.argv[1];
  if (!script) throw new Error('cannot tell which nsroute is running');
  return [process.execPath, realpathSync(script)];
}

// templates/ next to the installed script (/usr/local/lib/nsroute/templates) or one level up
// (dist/nsroute.js in a checkout).
export function readTemplate(file: string): string {
  const here = dirname(realpathSync(process.argv[1] ?? '.'));
  for (const dir of [join(here, 'templates'), join(here, '..', 'templates')]) {
    const text = readTextIfExists(join(dir, file));
    if (text !== undefined) return text;
  }
  throw new UserError(`template ${file} not found next to ${here}`, 'reinstall nsroute (scripts/install.sh copies templates/)');
}

// Where the host's /etc/resolv.conf leads when it is a symlink (systemd-resolved's stub).
export function resolvConfTarget(): string | undefined {
  try {
    const target = realpathSync('/etc/resolv.conf');
    return target === '/etc/resolv.conf' ? undefined : target;
  } catch {
    return undefined;
  }
}
