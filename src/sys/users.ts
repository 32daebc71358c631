import { run } from './run.js';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  groups: number[];
}

// Through NSS (getent), not /etc/passwd, so LDAP/sssd users work too.
export async function lookupAccount(nameOrUid: string): Promise<Account | undefined> {
  const { stdout, exitCode } = await run(['getent', 'passwd', nameOrUid], { allowFail: true });
  if (exitCode !== 0 || !stdout.trim()) return undefined;
  const [name, , uid, gid, , home, shell] = stdout.trim().split('\n')[0]!.split(':');
  const ids = await run(['id', '-G', name!], { allowFail: true });
  const groups = ids.exitCode === 0 ? ids.stdout.trim().split(/\s+/).filter(Boolean).map(Number) : [Number(gid)];
  return { name: name!, uid: Number(uid), gid: Number(gid), home: home || '/', shell: shell || '/bin/sh', groups };
}
