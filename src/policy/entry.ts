// nsroute for users who are not root (docs/unprivileged.md). Two halves:
// - the caller's side (not root): re-runs the same command through `sudo -n ENTRY ...`;
// - the root side (entered through ENTRY, which runs `nsroute --from-sudo ...`): establishes
//   who the caller is from what sudo guarantees and the system's databases, strips the
//   environment, and (enforce.ts) lets through only what the profiles allow that caller.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants, userInfo } from 'node:os';
import { UserError } from '../errors.js';
import { PATH_ENV } from '../state/paths.js';
import { lookupAccount } from '../sys/users.js';
import { SAFE_PATH, validatePlainPath } from './allow.js';
import { callerContext, setCaller } from './context.js';

export const DEFAULT_ENTRY = '/usr/local/lib/nsroute/nsroute-user';
export const FROM_SUDO = '--from-sudo';

// What a user may run through the entry point. `move` joins when it exists (issue 15): it must
// then check that the process is the caller's own.
export const USER_VERBS: ReadonlySet<string> = new Set(['exec', 'shell', 'list', 'status', 'check', 'move']);
// Commands only root may run: one line saying so instead of a permission error mid-way.
const ROOT_VERBS: ReadonlySet<string> = new Set(['up', 'down', 'enable', 'disable', 'attach', 'detach', 'watch', 'gc', 'allow', 'disallow']);
const EXEC_VERBS: ReadonlySet<string> = new Set(['exec', 'shell']);

// The entry point sudo runs for users (overridable for root's `allow` and for the caller's
// side: a caller who points it elsewhere only asks sudo for a command sudo does not allow).
export function entryPath(env: NodeJS.ProcessEnv = process.env): string {
  return validatePlainPath(env.NSROUTE_ENTRY || DEFAULT_ENTRY, 'NSROUTE_ENTRY');
}

export type Routed = { argv: string[] } | { code: number };

// Called first by main(): decides whether this run is a caller's, to be sent through sudo,
// or the root side of one, to be policed; root's own runs pass through unchanged.
export async function routeCaller(argv: string[]): Promise<Routed> {
  if (argv[2] === FROM_SUDO) return { argv: await enterFromSudo(argv) };
  if (typeof process.geteuid !== 'function' || process.geteuid() === 0) return { argv };
  const verb = argv[2];
  const rest = argv.slice(3);
  const helpOnly = rest.some((a) => a === '--help' || a === '-h') || verb === undefined || verb.startsWith('-') || verb === 'help';
  if (helpOnly || !(USER_VERBS.has(verb) || ROOT_VERBS.has(verb))) return { argv };
  const usage = EXEC_VERBS.has(verb) ? 125 : 2;
  if (ROOT_VERBS.has(verb)) {
    process.stderr.write(`nsroute: nsroute ${verb} needs root; run it as root (sudo nsroute ${verb} ...), users may only run exec, shell, list, status and check\n`);
    return { code: 2 };
  }
  return { code: await viaSudo(argv.slice(2), usage) };
}

function sudoBinary(): string | undefined {
  for (const p of ['/usr/bin/sudo', '/bin/sudo', '/usr/local/bin/sudo']) if (existsSync(p)) return p;
  return undefined;
}

function whoami(): string {
  try {
    return `${userInfo().username}, uid ${process.getuid?.()}`;
  } catch {
    return `uid ${process.getuid?.()}`;
  }
}

async function viaSudo(args: string[], failCode: number): Promise<number> {
  const sudo = sudoBinary();
  const entry = entryPath();
  const name = args[0] === 'list' ? 'NAME' : (args.slice(1).find((a) => !a.startsWith('-')) ?? 'NAME');
  const grant = `root can grant it with \`nsroute allow ${name} ${userInfo().username}\``;
  if (!sudo) {
    process.stderr.write(`nsroute: nsroute ${args[0]} needs root, and sudo (which lets allowed users in) is not installed; run it as root\n`);
    return failCode;
  }
  // May sudo run the entry point for us without a password? Asked first, quietly, so that a
  // refusal is one line of ours rather than sudo's prompt or its "password is required".
  const probe = spawnSync(sudo, ['-n', '-l', entry], { stdio: ['ignore', 'ignore', 'ignore'] });
  if (probe.status !== 0) {
    process.stderr.write(`nsroute: you (${whoami()}) may not use nsroute without root: no profile allows you (allow = [...] in /etc/nsroute/NAME.toml); ${grant}\n`);
    return failCode;
  }
  const child = spawn(sudo, ['-n', entry, ...args], { stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  const sigs: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP'];
  for (const s of sigs) process.on(s, forward);
  // ^C reaches sudo from the terminal itself (same process group); do not die before it.
  process.on('SIGINT', () => undefined);
  return new Promise<number>((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`nsroute: cannot run sudo: ${e.message}\n`);
      resolve(failCode);
    });
    child.on('close', (code, signal) => {
      for (const s of sigs) process.off(s, forward);
      resolve(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? failCode));
    });
  });
}

const ID_RE = /^(0|[1-9][0-9]{0,9})$/;
const SAFE_VALUE_RE = /^[A-Za-z0-9_.@+-]{1,64}$/;

// The root side. Trusts only: its real and effective uid (0), SUDO_UID/SUDO_COMMAND, which
// sudo itself sets and the caller cannot, and the entry point (root's file; it ran env -i, so
// every other variable is its own). Everything about the caller comes from the passwd and
// group databases.
async function enterFromSudo(argv: string[]): Promise<string[]> {
  if (process.getuid?.() !== 0 || process.geteuid?.() !== 0) {
    throw new UserError(`${FROM_SUDO} is how sudo enters nsroute for an allowed user`, 'run `nsroute COMMAND` without it');
  }
  const env = process.env;
  const uidText = env.SUDO_UID ?? '';
  if (!ID_RE.test(uidText)) throw new UserError(`${FROM_SUDO}: not entered through sudo (SUDO_UID is missing)`, 'run `nsroute COMMAND` as that user');
  const entry = entryPath();
  if ((env.SUDO_COMMAND ?? '').split(' ')[0] !== entry) {
    throw new UserError(`${FROM_SUDO}: not entered through the entry point ${entry}`, 'run `nsroute COMMAND` as that user');
  }
  const account = await lookupAccount(uidText);
  if (!account || account.uid !== Number(uidText)) throw new UserError(`uid ${uidText} is not a user of this system`, 'ask root to check the passwd database');
  // Nothing the caller could have set survives: the entry point's env -i kept PATH, SUDO_*,
  // TERM, LANG, LC_ALL and the directories and cgroup parent root configured; the test hooks never.
  for (const key of Object.keys(env)) {
    const keep =
      key === 'PATH' ||
      key.startsWith('SUDO_') ||
      key === 'NSROUTE_ENTRY' ||
      key === 'NSROUTE_CGROUP_PARENT' ||
      (PATH_ENV as readonly string[]).includes(key) ||
      ['TERM', 'LANG', 'LC_ALL'].includes(key);
    if (!keep || key === 'NSROUTE_UNIT_DIR') delete env[key];
  }
  for (const key of ['TERM', 'LANG', 'LC_ALL']) if (env[key] !== undefined && !SAFE_VALUE_RE.test(env[key]!)) delete env[key];
  for (const key of ['TERM', 'LANG', 'LC_ALL']) if (env[key] === '') delete env[key];
  env.PATH = SAFE_PATH;
  setCaller({ uid: account.uid, gid: account.gid, name: account.name, gids: account.groups.includes(account.gid) ? account.groups : [account.gid, ...account.groups] });
  // A caller's terminal must not stop root's side while it may hold the host lock (^Z, or
  // SIGTSTP relayed by sudo). SIGSTOP it cannot send: the process is root's (docs).
  for (const sig of ['SIGTSTP', 'SIGTTIN', 'SIGTTOU'] as const) process.on(sig, () => undefined);
  return [argv[0]!, argv[1]!, ...argv.slice(3)];
}

export function inUserMode(): boolean {
  return callerContext() !== undefined;
}
