import { readTextIfExists } from './fsx.js';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  groups: number[];
}

function parsePasswdLine(line: string): Omit<Account, 'groups'> | undefined {
  const [name, , uid, gid, , home, shell] = line.split(':');
  if (!name || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) return undefined;
  return { name, uid: Number(uid), gid: Number(gid), home: home || '/', shell: shell || '/bin/sh' };
}

// /etc/passwd and /etc/group first: "files" comes first in nsswitch.conf almost everywhere,
// and reading them saves two spawns on every exec.
function fromFiles(nameOrUid: string): Account | undefined {
  const byUid = /^\d+$/.test(nameOrUid);
  const entry = (readTextIfExists('/etc/passwd') ?? '')
    .split('\n')
    .map(parsePasswdLine)
    .find((a) => a && (byUid ? a.uid === Number(nameOrUid) : a.name === nameOrUid));
  if (!entry) return undefined;
  const groups = new Set<number>([entry.gid]);
  for (const line of (readTextIfExists('/etc/group') ?? '').split('\n')) {
    const [, , gid, members] = line.split(':');
    if (gid && /^\d+$/.test(gid) && (members ?? '').split(',').includes(entry.name)) groups.add(Number(gid));
  }
  return { ...entry, groups: [...groups] };
}

// Then NSS (getent, id), so LDAP/sssd users work too. The tool runner is loaded only then:
// `list` names the users of the processes it finds from /etc/passwd alone, and loading it
// loads node:child_process and Node's stream modules.
async function fromNss(nameOrUid: string): Promise<Account | undefined> {
  const { run } = await import('./run.js');
  const { stdout, exitCode } = await run(['getent', 'passwd', nameOrUid], { allowFail: true });
  const entry = exitCode === 0 ? parsePasswdLine(stdout.trim().split('\n')[0] ?? '') : undefined;
  if (!entry) return undefined;
  const ids = await run(['id', '-G', entry.name], { allowFail: true });
  const groups = ids.exitCode === 0 ? ids.stdout.trim().split(/\s+/).filter(Boolean).map(Number) : [entry.gid];
  return { ...entry, groups };
}

export async function lookupAccount(nameOrUid: string): Promise<Account | undefined> {
  return fromFiles(nameOrUid) ?? (await fromNss(nameOrUid));
}
