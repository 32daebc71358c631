import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HostError, UserError } from '../errors.js';

// cgroup mode's side effects on the cgroup v2 filesystem, and nft loads that name cgroups.

// Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on pure-v2 hosts, often
// /sys/fs/cgroup/unified on hybrid ones (PLATFORM.md). undefined: no cgroup v2 at all.
export function cgroup2Mount(mountinfo = readMountinfo()): string | undefined {
  const points: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const fstype = line.slice(dash + 3).split(' ')[0];
    if (fstype !== 'cgroup2') continue;
    const mountPoint = line.split(' ')[4];
    if (mountPoint) points.push(mountPoint.replace(/\\040/g, ' '));
  }
  return points.includes('/sys/fs/cgroup') ? '/sys/fs/cgroup' : points.find((p) => p.startsWith('/sys/fs/cgroup/')) ?? points[0];
}

function readMountinfo(): string {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return '';
  }
}

// The cgroup v2 mount, or a UserError saying this host cannot do cgroup mode.
export function requireCgroup2(): string {
  const mount = cgroup2Mount();
  if (!mount) {
    throw new UserError('cgroup mode needs cgroup v2, and this host has no cgroup2 filesystem mounted', 'mount it (`mount -t cgroup2 none /sys/fs/cgroup/unified`), or use --mode nat');
  }
  return mount;
}

// Whether PID 1 is systemd: it owns the cgroup tree then and expects others to manage only
// subtrees delegated to them (README, cgroup mode).
export function systemdIsPid1(): boolean {
  try {
    return readlinkSync('/proc/1/exe').includes('systemd') || existsSync('/run/systemd/system');
  } catch {
    return existsSync('/run/systemd/system');
  }
}

// The parent of NAMEs' cgroups, relative to the v2 mount: `nsroute`, or NSROUTE_CGROUP_PARENT
// (tests give each world its own). Root's setting only: policy/entry.ts drops a sudo caller's
// NSROUTE_*, and `nsroute allow` bakes the value in force into the root-owned entry point;
// validated: plain path components, no `..`, at most 4 deep.
export const CGROUP_PARENT_ENV = 'NSROUTE_CGROUP_PARENT';
const COMPONENT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export function cgroupParent(env: NodeJS.ProcessEnv = process.env): string {
  const value = env[CGROUP_PARENT_ENV];
  if (value === undefined || value === '') return 'nsroute';
  const parts = value.split('/');
  if (parts.length > 4 || !parts.every((p) => COMPONENT_RE.test(p) && p !== '..' && p !== '.')) {
    throw new UserError(`${CGROUP_PARENT_ENV}=${JSON.stringify(value)} is not a cgroup path`, 'give a path relative to the cgroup v2 mount, e.g. nsroute or test/nsroute (letters, digits, _ . -)');
  }
  return value;
}

// An existing directory on the path that is a symlink or not a directory is refused: the
// cgroup filesystem has neither, so it is not the cgroup filesystem.
function checkDirs(mount: string, rel: string): void {
  let at = mount;
  for (const part of rel.split('/')) {
    at = join(at, part);
    let st;
    try {
      st = lstatSync(at);
    } catch {
      return;
    }
    if (!st.isDirectory()) throw new HostError(`${at} is not a cgroup directory`, 'move it away');
  }
}

// mkdir -p of the cgroup path; returns the directories it made (parents first).
export function makeCgroup(mount: string, rel: string): string[] {
  checkDirs(mount, rel);
  const made: string[] = [];
  let at = mount;
  for (const part of rel.split('/')) {
    at = join(at, part);
    if (existsSync(at)) continue;
    mkdirSync(at, { mode: 0o755 });
    made.push(at);
  }
  return made;
}

// The pids in a cgroup (cgroup.procs), [] when it is gone.
export function cgroupProcs(mount: string, rel: string): number[] {
  try {
    return readFileSync(join(mount, rel, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

// Moves a process (all its threads) into a cgroup. Throws the kernel's error (ESRCH: gone).
export function moveToCgroup(mount: string, rel: string, pid: number): void {
  writeFileSync(join(mount, rel, 'cgroup.procs'), `${pid}\n`);
}

// The v2 cgroup a process is in (from /proc/PID/cgroup, line "0::/PATH"), relative to the mount.
export function cgroupOf(pid: number): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
    return line === undefined ? undefined : line.slice(3).replace(/^\//, '');
  } catch {
    return undefined;
  }
}

// rmdir of a cgroup; true when it is gone. Members still in it are moved out first (to
// `outTo`, the v2 root by default): a cgroup with processes cannot be removed.
export function removeCgroup(mount: string, rel: string, outTo = ''): boolean {
  const dir = join(mount, rel);
  if (!existsSync(dir)) return true;
  for (const pid of cgroupProcs(mount, rel)) {
    try {
      moveToCgroup(mount, outTo, pid);
    } catch {
      /* ended meanwhile */
    }
  }
  try {
    rmdirSync(dir);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'EBUSY' || code === 'ENOTEMPTY') return false;
    throw e;
  }
}

// rmdir when empty of processes and child cgroups (the parent of NAMEs, once the last goes).
export function removeCgroupIfUnused(mount: string, rel: string): void {
  try {
    rmdirSync(join(mount, rel));
  } catch {
    /* in use, or gone */
  }
}

// `nft -f -` where nft resolves cgroup paths: nft looks them up under /sys/fs/cgroup, so on a
// hybrid host (v2 at /sys/fs/cgroup/unified) it runs in a private mount namespace with the v2
// mount bound there (PLATFORM.md). One transaction either way.
// (The tool runner loaded here, not with the module: list reads cgroups, and runs no tool.)
export async function nftApplyCg(ruleset: string, mount: string): Promise<void> {
  const { run } = await import('./run.js');
  if (mount === '/sys/fs/cgroup') {
    await run(['nft', '-f', '-'], { input: ruleset });
    return;
  }
  await run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /sys/fs/cgroup && exec nft -f -', 'nsroute-nft', mount], { input: ruleset });
}

// The host's resolver daemons' sockets (systemd-resolved's varlink, nscd). A process moved into
// a cgroup-mode NAME keeps the host's mounts: lookups through these (nss-resolve, nscd) are
// made by the daemon, on the host's routes, which no firewall rule of NAME sees (issue 12).
export const RESOLVER_SOCKETS = ['/run/systemd/resolve/io.systemd.Resolve', '/run/nscd/socket', '/var/run/nscd/socket'];

export function localResolverSockets(): string[] {
  return RESOLVER_SOCKETS.filter((p) => existsSync(p));
}
