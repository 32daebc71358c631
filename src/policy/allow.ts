// The `allow` key of a profile: who may use NAME without a root shell (docs/unprivileged.md).
// Pure: parsing, matching, editing a profile's text and rendering the sudoers drop-in and the
// entry point. Nothing here looks at the system.
import { parse as parseToml } from 'smol-toml';
import { UserError } from '../errors.js';

// A user or group name as shadow's useradd/groupadd accept them by default (NAME_REGEX),
// at most 32 characters. Strict on purpose: these names land in a sudoers file, where
// `,:=\!()%#"` and white space have meaning, and a numeric name would read as a uid.
const ACCOUNT_RE = /^[a-z_][a-z0-9_-]{0,30}[$]?$/;
export const MAX_ALLOW = 64;

export interface Allow {
  users: string[];
  groups: string[];
}

// One entry: "alice" (a user) or "%netdev" (a group). Returns it unchanged when valid.
export function validateAllowEntry(entry: unknown, where: string): string {
  if (typeof entry !== 'string') throw new UserError(`${where}: allow must be a list of user names and %group names`, 'write e.g. allow = ["alice", "%netdev"]');
  const name = entry.startsWith('%') ? entry.slice(1) : entry;
  if (!ACCOUNT_RE.test(name)) {
    throw new UserError(
      `${where}: ${JSON.stringify(entry)} is not a user name or %group`,
      'a name is lower-case letters, digits, "_" or "-" (not first), at most 32 characters; a group starts with %',
    );
  }
  return entry;
}

// The value of the `allow` key (undefined: the key is absent: nobody).
export function parseAllow(value: unknown, where: string): Allow {
  if (!Array.isArray(value)) throw new UserError(`${where}: allow must be a list`, 'write e.g. allow = ["alice", "%netdev"]');
  if (value.length > MAX_ALLOW) throw new UserError(`${where}: allow lists ${value.length} entries, at most ${MAX_ALLOW} are accepted`, 'allow a group instead: "%group"');
  const out: Allow = { users: [], groups: [] };
  for (const v of value) {
    const entry = validateAllowEntry(v, where);
    if (entry.startsWith('%')) {
      if (!out.groups.includes(entry.slice(1))) out.groups.push(entry.slice(1));
    } else if (!out.users.includes(entry)) out.users.push(entry);
  }
  return out;
}

export function allowEntries(a: Allow): string[] {
  return [...a.users, ...a.groups.map((g) => `%${g}`)];
}

// The caller as the system's databases describe it (never its environment).
export interface Caller {
  uid: number;
  name: string;
  gids: number[]; // primary and supplementary, from the group database
}

// Why `caller` may use a NAME whose profile allows `allow` (a string for the audit line), or
// undefined. `groupGid` maps a group name to its gid in the system's group database.
export function allowedBy(caller: Caller, allow: Allow | undefined, groupGid: (name: string) => number | undefined): string | undefined {
  if (caller.uid === 0) return 'root';
  if (!allow) return undefined;
  if (allow.users.includes(caller.name)) return `user ${caller.name}`;
  for (const g of allow.groups) {
    const gid = groupGid(g);
    if (gid !== undefined && caller.gids.includes(gid)) return `group %${g}`;
  }
  return undefined;
}

// --- Editing a profile's text -------------------------------------------------------------

// The profile's text with its allow key set to `entries` (removed when empty). Only the
// allow assignment is rewritten: comments and the other keys stay as the admin wrote them.
// The result is parsed back and must equal the input in every other key, else the edit is
// refused (the admin edits the file by hand then).
export function setAllowInText(text: string, entries: readonly string[], file: string): string {
  const before = parseDoc(text, file);
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^\s*allow\s*=/.test(l));
  let out: string[];
  const assignment = entries.length > 0 ? [`allow = [${entries.map((e) => JSON.stringify(e)).join(', ')}]`] : [];
  if (start < 0) {
    const body = text.endsWith('\n') || text === '' ? lines.slice(0, -1) : lines;
    out = [...body, ...assignment, ''];
  } else {
    let end = start;
    while (end < lines.length - 1 && !lines.slice(start, end + 1).join('\n').includes(']')) end++;
    out = [...lines.slice(0, start), ...assignment, ...lines.slice(end + 1)];
  }
  const result = out.join('\n');
  const after = parseDoc(result, file);
  const { allow: _a, ...restBefore } = before;
  const { allow: newAllow, ...restAfter } = after;
  const same = JSON.stringify(restBefore) === JSON.stringify(restAfter) && JSON.stringify(newAllow ?? []) === JSON.stringify(entries);
  if (!same) throw new UserError(`${file}: cannot rewrite its allow key safely`, 'edit the file by hand (allow = ["alice", "%netdev"]), then run `nsroute allow` to apply it');
  return result;
}

function parseDoc(text: string, file: string): Record<string, unknown> {
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`profile ${file} is not valid TOML: ${(e as Error).message.split('\n')[0]}`, 'fix the file first');
  }
}

// --- The sudoers drop-in and the entry point ------------------------------------------------

export const SUDOERS_HEADER = '# nsroute: generated by `nsroute allow` from the allow keys of the profiles; do not edit (it is rewritten)';
export const ENTRY_HEADER = '# nsroute user entry point: generated by `nsroute allow`; sudo runs it for the users the profiles allow';

// A path that goes into sudoers and a shell script unquoted-safe: absolute, plain characters.
const PLAIN_PATH_RE = /^\/[A-Za-z0-9._/+-]*$/;
function validateCgroupPath(path: string, what: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(\/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}){0,3}$/.test(path) || path.split('/').some((p) => p === '..' || p === '.')) {
    throw new UserError(`${what} ${JSON.stringify(path)} is not a cgroup path`, 'give a path relative to the cgroup v2 mount, e.g. nsroute');
  }
  return path;
}

export function validatePlainPath(path: string, what: string): string {
  if (!PLAIN_PATH_RE.test(path) || path.split('/').some((p) => p === '..' || p === '.')) {
    throw new UserError(`${what} ${JSON.stringify(path)} must be an absolute path of letters, digits and ._/+-`, 'move it to such a path');
  }
  return path;
}

// Everyone any profile allows may run the one entry point, as root, without a password, with
// an empty environment besides what sudo itself sets (env_reset, no env_keep). The entry
// point takes any arguments: nsroute's root code polices them (a sudoers argument pattern
// would be the weaker check: `*` matches across spaces).
export function renderSudoers(entry: string, allows: readonly Allow[]): string | undefined {
  validatePlainPath(entry, 'the entry point');
  const users = new Set<string>();
  for (const a of allows) {
    for (const u of a.users) users.add(u);
    for (const g of a.groups) users.add(`%${g}`);
  }
  if (users.size === 0) return undefined;
  return [
    SUDOERS_HEADER,
    // The entry point by its path, not through a Cmnd_Alias: an alias name is global to all of
    // sudoers, and a second drop-in defining the same one is a parse error that stops sudo
    // for everyone.
    `Defaults!${entry} env_reset, !env_keep, !setenv`,
    `${[...users].sort().join(', ')} ALL = (root) NOPASSWD: ${entry}`,
    '',
  ].join('\n');
}

// The entry point: a root-owned script that clears the environment (whatever sudo's global
// configuration keeps) and runs this nsroute with --from-sudo first. `settings` are the
// NSROUTE_* directories in force when root ran `nsroute allow` (tests, unusual systems).
export function renderEntry(opts: { node: string; bundle: string; entry: string; settings: Record<string, string> }): string {
  const node = validatePlainPath(opts.node, 'node');
  const bundle = validatePlainPath(opts.bundle, 'the nsroute bundle');
  const entry = validatePlainPath(opts.entry, 'the entry point');
  // Paths, and the cgroup parent (a relative cgroup path, checked by sys/cgroup.ts the same way).
  const settings = Object.entries(opts.settings).map(([k, v]) => `${k}=${k === 'NSROUTE_CGROUP_PARENT' ? validateCgroupPath(v, k) : validatePlainPath(v, k)}`);
  return [
    '#!/bin/sh',
    ENTRY_HEADER,
    `exec /usr/bin/env -i PATH=${SAFE_PATH} SUDO_UID="$SUDO_UID" SUDO_GID="$SUDO_GID" SUDO_USER="$SUDO_USER" SUDO_COMMAND="$SUDO_COMMAND" TERM="$TERM" LANG="$LANG" LC_ALL="$LC_ALL" NSROUTE_ENTRY=${entry} ${settings.join(' ')} ${node} ${bundle} --from-sudo "$@"`.replace(/ +/g, ' '),
    '',
  ].join('\n');
}

export const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
