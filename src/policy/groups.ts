import { readTextIfExists } from '../sys/fsx.js';
import { run } from '../sys/run.js';

// A group's gid from the system's group database: /etc/group, then NSS (getent), never the
// caller's environment.
export async function groupGid(name: string): Promise<number | undefined> {
  for (const line of (readTextIfExists('/etc/group') ?? '').split('\n')) {
    const [g, , gid] = line.split(':');
    if (g === name && /^\d+$/.test(gid ?? '')) return Number(gid);
  }
  if (name.startsWith('-')) return undefined;
  const r = await run(['getent', 'group', name], { allowFail: true });
  const gid = r.exitCode === 0 ? r.stdout.split('\n')[0]?.split(':')[2] : undefined;
  return gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : undefined;
}

export async function groupGids(names: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const n of names) {
    const gid = await groupGid(n);
    if (gid !== undefined) out.set(n, gid);
  }
  return out;
}
