// `nsroute allow` / `nsroute disallow`: edit the allow key of a profile, then make the system
// match all profiles: the sudoers drop-in and the entry point (docs/unprivileged.md).
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { UserError } from '../errors.js';
import { validateName } from '../net/names.js';
import { parse as parseToml } from 'smol-toml';
import { ENTRY_HEADER, SUDOERS_HEADER, allowEntries, parseAllow, renderEntry, renderSudoers, setAllowInText, validateAllowEntry, validatePlainPath, type Allow } from '../policy/allow.js';
import { entryPath } from '../policy/entry.js';
import { groupGid } from '../policy/groups.js';
import { installOwnFile, removeOwnFile, requireTrustedDir } from '../policy/install.js';
import { PATH_ENV, configDir, paths } from '../state/paths.js';
import { CGROUP_PARENT_ENV, cgroupParent } from '../sys/cgroup.js';
import { listDir, writeFileAtomic } from '../sys/fsx.js';
import { run } from '../sys/run.js';
import { readTrustedText } from '../sys/trusted-file.js';
import { lookupAccount } from '../sys/users.js';
import { requireRoot } from './options.js';

export const DEFAULT_SUDOERS = '/etc/sudoers.d/nsroute';
const sudoersPath = (): string => validatePlainPath(process.env.NSROUTE_SUDOERS || DEFAULT_SUDOERS, 'NSROUTE_SUDOERS');

interface AllowOptions {
  json?: boolean;
}

// Each entry must name an existing user or group: a typo must not sit in sudoers waiting
// for someone to create that account.
async function checkEntries(entries: readonly string[]): Promise<void> {
  for (const e of entries) {
    validateAllowEntry(e, 'nsroute allow');
    if (e.startsWith('%')) {
      if ((await groupGid(e.slice(1))) === undefined) throw new UserError(`group ${e.slice(1)} does not exist`, '`getent group` lists groups');
    } else if (!(await lookupAccount(e))) throw new UserError(`user ${e} does not exist`, '`getent passwd` lists users');
  }
}

function editProfile(name: string, change: (current: string[]) => string[]): string[] {
  validateName(name);
  const file = paths.profile(name);
  const text = readTrustedText(file, 'profile');
  if (text === undefined) throw new UserError(`${name} has no profile ${file}, so nothing says where it routes`, `write ${file} first (e.g. via = "192.168.2.1"), then allow users to use it`);
  if (lstatSync(file).isSymbolicLink()) throw new UserError(`profile ${file} is a symbolic link; nsroute does not rewrite it`, 'edit the allow key by hand, then run `nsroute allow`');
  const doc = parseToml(text) as Record<string, unknown>;
  const current = doc.allow === undefined ? [] : allowEntries(parseAllow(doc.allow, `profile ${file}`));
  const next = change(current);
  if (JSON.stringify(next) !== JSON.stringify(current)) writeFileAtomic(file, setAllowInText(text, next, file), 0o644);
  return next;
}

// Every profile's allow key (a profile that cannot be read or parsed allows nobody: warned).
function allAllows(): Map<string, Allow> {
  const out = new Map<string, Allow>();
  for (const f of listDir(configDir()).sort()) {
    const m = /^([A-Za-z0-9][A-Za-z0-9_-]{0,63})\.toml$/.exec(f);
    if (!m) continue;
    try {
      const text = readTrustedText(paths.profile(m[1]!), 'profile');
      const doc = text === undefined ? {} : (parseToml(text) as Record<string, unknown>);
      if (doc.allow !== undefined) out.set(m[1]!, parseAllow(doc.allow, `profile ${paths.profile(m[1]!)}`));
    } catch (e) {
      process.stderr.write(`nsroute: ${(e as Error).message}; it allows nobody until fixed\n`);
    }
  }
  return out;
}

// The sudoers drop-in and the entry point, from all profiles; both removed when none allows
// anyone.
export async function syncSudoers(): Promise<{ sudoers?: string; entry?: string; allows: Map<string, Allow> }> {
  const allows = allAllows();
  const sudoers = sudoersPath();
  const entry = entryPath();
  const text = renderSudoers(entry, [...allows.values()]);
  if (text === undefined) {
    removeOwnFile(sudoers, SUDOERS_HEADER);
    removeOwnFile(entry, ENTRY_HEADER);
    return { allows };
  }
  if (!existsSync(dirname(sudoers)) || !(await run(['sh', '-c', 'command -v visudo'], { allowFail: true })).stdout.trim()) {
    throw new UserError(`sudo is not installed (no ${dirname(sudoers)} or no visudo), and allowed users reach nsroute through it`, 'install it (apt-get install sudo), then run `nsroute allow` again');
  }
  // The entry point runs this very nsroute with this node: both must be root's, in
  // directories only root can change, or whoever could write them would be root.
  const node = realpathSync(process.execPath);
  const bundle = realpathSync(process.argv[1]!);
  requireTrustedDir(node.replace(/\/[^/]*$/, '') || '/', `node ${node}`);
  requireTrustedDir(bundle.replace(/\/[^/]*$/, '') || '/', `the nsroute bundle ${bundle}`);
  const settings: Record<string, string> = {};
  for (const key of PATH_ENV) if (key !== 'NSROUTE_UNIT_DIR' && process.env[key]) settings[key] = process.env[key]!;
  // Where cgroup-mode NAMEs live is root's setting too: allowed users' NAMEs go there as well.
  if (process.env[CGROUP_PARENT_ENV]) settings[CGROUP_PARENT_ENV] = cgroupParent();
  await installOwnFile(entry, renderEntry({ node, bundle, entry, settings }), 0o755, ENTRY_HEADER, { mkdir: true, what: 'the entry point' });
  await installOwnFile(sudoers, text, 0o440, SUDOERS_HEADER, {
    what: 'the sudoers drop-in',
    check: async (tmp) => {
      const r = await run(['visudo', '-c', '-q', '-f', tmp], { allowFail: true });
      if (r.exitCode !== 0) throw new UserError(`visudo rejects the drop-in nsroute generated: ${(r.stderr || r.stdout).trim()}`, 'report this; nothing was installed');
    },
  });
  return { sudoers, entry, allows };
}

async function finish(opts: AllowOptions, name: string | undefined, now: string[] | undefined): Promise<number> {
  const { sudoers, entry, allows } = await syncSudoers();
  if (opts.json) {
    const profiles = Object.fromEntries([...allows].map(([n, a]) => [n, allowEntries(a)]));
    process.stdout.write(JSON.stringify({ ...(name ? { name, allow: now } : {}), profiles, sudoers: sudoers ?? null, entry: entry ?? null }, null, 2) + '\n');
    return 0;
  }
  if (name) process.stdout.write(`${name}: ${now!.length > 0 ? `allowed to ${now!.join(', ')}` : 'allowed to nobody but root'}\n`);
  else for (const [n, a] of allows) process.stdout.write(`${n}: allowed to ${allowEntries(a).join(', ') || 'nobody but root'}\n`);
  process.stdout.write(sudoers ? `nsroute: ${sudoers} lets them run ${entry} (nsroute exec, shell, list, status, check) without a password\n` : 'nsroute: no profile allows anyone: no sudoers drop-in\n');
  return 0;
}

export async function runAllow(name: string | undefined, who: string[], opts: AllowOptions): Promise<number> {
  requireRoot();
  if (name === undefined) return finish(opts, undefined, undefined);
  if (who.length === 0) throw new UserError('whom to allow?', `nsroute allow ${name} USER|%GROUP...; \`nsroute allow\` alone applies the profiles as they are`);
  await checkEntries(who);
  const now = editProfile(name, (cur) => [...cur, ...who.filter((w) => !cur.includes(w))]);
  return finish(opts, name, now);
}

export async function runDisallow(name: string, who: string[], opts: AllowOptions): Promise<number> {
  requireRoot();
  if (who.length === 0) throw new UserError('whom to disallow?', `nsroute disallow ${name} USER|%GROUP...`);
  for (const w of who) validateAllowEntry(w, 'nsroute disallow');
  const now = editProfile(name, (cur) => cur.filter((c) => !who.includes(c)));
  return finish(opts, name, now);
}
