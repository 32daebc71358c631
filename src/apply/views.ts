import { closeSync, constants, existsSync, fstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_IFACE_PREFIX, compareNames } from '../net/names.js';
import { isDeadNetnsFile, readRegularFile, readTrustedFile } from '../sys/fsx.js';
import { dhcpPid } from '../sys/dhcppid.js';
import { isSameProcessAlive, netnsInode, netnsProcessesByInode, netnsProcessScan, processInfo, type NetnsScan } from '../sys/proc.js';
import { lookupAccount } from '../sys/users.js';
import { hostLockGeneration } from '../state/lockinfo.js';
import { NETNS_RUN_DIR, paths } from '../state/paths.js';
import { allStates, sameHolder, type Holder, type NamespaceState } from '../state/store.js';
import { joinHolders, joinHoldersByName } from '../state/joins.js';
import { Journal } from './journal.js';
import { hostModeMembers } from './hostmode.js';

// What a NAME is and who uses it, read without changing anything: `list`, `status` and the
// holder checks of every command. Its own module, apart from lifecycle.ts, so that `list` and
// `status` load only this (no planner, executors, ip-cidr or execa): they read states, /proc
// and /proc/net, and load lifecycle.ts only for what needs the lock or a tool (a NAME read
// while someone held the lock, an untracked NAME, a DHCP lease).

export function netnsPath(name: string): string {
  return join(NETNS_RUN_DIR, name);
}

export function isLiveNetns(name: string): boolean {
  return existsSync(netnsPath(name)) && !isDeadNetnsFile(netnsPath(name));
}

// The state's holders that still run, and the execs that joined NAME without the lock (state/joins.ts).
// joins: the records of every NAME, read once by a caller that looks at many (inspectAll).
export function liveHolders(st: NamespaceState, joins?: ReadonlyMap<string, Holder[]>): Holder[] {
  return [...st.holders.filter((h) => isSameProcessAlive(h.pid, h.startTime)), ...(joins ? (joins.get(st.name) ?? []) : joinHolders(st.name))];
}

// Whether `self` is the last exec holding an ephemeral NAME (processes inside do not count):
// when it leaves, NAME goes, unless they still run (exec's settle, and its early teardown read).
export function isLastExec(st: NamespaceState | undefined, self: Pick<Holder, 'pid' | 'startTime'>): st is NamespaceState {
  return !!st && !st.persistent && !liveHolders(st).some((h) => h.kind !== 'process' && !sameHolder(h, self));
}

// Processes inside NAME that are not nsroute's own (the DHCP client of --dhcp).
export function userProcesses(name: string, scan?: NetnsScan, st?: NamespaceState): number[] {
  const pids = namespaceProcesses(name, scan, st);
  if (pids.length === 0) return pids;
  const own = dhcpPid(paths.dhcpPid(name));
  return pids.filter((p) => p !== own);
}

// The inode of the namespace nsroute created for NAME (its journal says which, and the state
// of a NAME created since it records it too: `list` reads no journals), whatever name it has
// now: another tool may have deleted /run/netns/NAME and made its own NAME.
// undefined when nothing proves which one is ours (then nothing is ours to signal).
export function ownNetnsInode(name: string, st?: NamespaceState): number | undefined {
  if (st?.name === name && st.netns) return st.netns.ino;
  const owner = new Journal(paths.journal(name)).netnsOwnership();
  if (typeof owner === 'object') return owner.ino;
  return owner === 'legacy' ? netnsInode(netnsPath(name)) : undefined;
}

// Processes in NAME's own namespace (never those of a foreign namespace that took its name).
// `scan`: one pass over /proc shared by many NAMEs (proc.ts).
// A host mode's NAME (no namespace) is held by its members instead (hostmode.ts).
export function namespaceProcesses(name: string, scan?: NetnsScan, st?: NamespaceState): number[] {
  const ino = ownNetnsInode(name, st);
  return ino === undefined ? (hostModeMembers(name) ?? []) : netnsProcessesByInode(ino, scan);
}

// Processes running inside NAME, as holders: what keeps a namespace whose execs are gone
// (a daemon a command left behind, or a command whose nsroute was SIGKILLed). Only the
// topmost ones (parent outside NAME): their children come and go with them, and if such a
// parent ends first, its children are re-parented and found at the next look.
export async function processHolders(name: string, scan?: NetnsScan, st?: NamespaceState): Promise<Holder[]> {
  const pids = userProcesses(name, scan, st);
  const inside = new Set(pids);
  const out: Holder[] = [];
  for (const pid of pids) {
    const info = processInfo(pid);
    if (!info || inside.has(info.ppid)) continue;
    const user = (await lookupAccount(String(info.uid)))?.name ?? String(info.uid);
    out.push({ pid, startTime: info.startTime, command: info.command, user, since: new Date().toISOString(), kind: 'process' });
  }
  return out;
}

// How a namespace looks to `list` and `status`, read without changing anything:
// 'stale': ephemeral and nothing uses it (the next command on it, or gc, removes it);
// 'interrupted': a create or teardown that crashed (the next command on it, or gc, undoes it);
// 'untracked': alive and tagged as nsroute's, but its state is gone (gc recovers it).
export type Condition = 'up' | 'stale' | 'interrupted' | 'untracked';

export interface NamespaceView {
  state: NamespaceState;
  condition: Condition;
  holders: Holder[];
  // --dhcp: what the lease gave, read from the namespace (address/prefix, name servers).
  lease?: { address?: string; dns: string[] };
}

export async function viewOf(st: NamespaceState, scan: NetnsScan, untracked = false, joins?: ReadonlyMap<string, Holder[]>): Promise<NamespaceView> {
  if (st.status !== 'up') return { state: st, condition: 'interrupted', holders: [] };
  let holders = liveHolders(st, joins);
  if (holders.length === 0) holders = await processHolders(st.name, scan, st);
  const condition: Condition = untracked ? 'untracked' : !st.persistent && holders.length === 0 ? 'stale' : 'up';
  const lease = st.config.lan?.dhcp ? await (await import('./lifecycle.js')).leaseOf(st) : undefined;
  return { state: st, condition, holders, ...(lease ? { lease } : {}) };
}

// A create or teardown in progress must never be mistaken for a crashed one: every change of
// a state is made under the host lock, so a read during which nobody took the lock (its
// generation the same before and after, and nobody inside, state/lock.ts) saw states that
// were all complete; otherwise the read is done again under the lock. One pass over /proc for
// all NAMEs, the state files read once, and `ip` spawned only when the host has an interface
// named like nsroute's that no state accounts for (an untracked NAME, which only the owner
// tags on the links can tell).
export async function inspectAll(): Promise<NamespaceView[]> {
  return (await inspectWithoutLock()) ?? (await (await import('./lifecycle.js')).inspectLocked());
}

async function inspectWithoutLock(): Promise<NamespaceView[] | undefined> {
  const g0 = hostLockGeneration();
  if (g0 === undefined) return undefined;
  const scan = netnsProcessScan();
  const states = allStates();
  const joins = joinHoldersByName();
  const views = await Promise.all(states.map((st) => viewOf(st, scan, false, joins)));
  const accounted = new Set(states.map((s) => s.config.hostIface));
  if (hostInterfaces().some((i) => i.startsWith(HOST_IFACE_PREFIX) && !accounted.has(i))) views.push(...(await (await import('./lifecycle.js')).untrackedViews(states, scan)));
  if (hostLockGeneration() !== g0) return undefined;
  return views.sort((a, b) => compareNames(a.state.name, b.state.name));
}

// The interfaces of the network namespace nsroute runs in (/proc/net is this process's own;
// /sys/class/net is the one sysfs was mounted in).
function hostInterfaces(): string[] {
  const text = readRegularFile('/proc/net/dev', 4 << 20) ?? '';
  return text.split('\n').slice(2).flatMap((l) => {
    const m = /^\s*([^:\s]+):/.exec(l);
    return m ? [m[1]!] : [];
  });
}

function holderOf(lockPath: string): { pid: number; startTime: number } | undefined {
  try {
    const h = JSON.parse(readTrustedFile(lockPath) || 'null') as { pid?: unknown; startTime?: unknown } | null;
    if (h && typeof h.pid === 'number' && typeof h.startTime === 'number' && isSameProcessAlive(h.pid, h.startTime)) return { pid: h.pid, startTime: h.startTime };
  } catch {
    /* none, or not written yet */
  }
  return undefined;
}

// The host's watcher, by what it wrote into its lock file (never the pid alone: pids are reused).
export function runningWatcher(): { pid: number; startTime: number } | undefined {
  return holderOf(paths.hostWatchLock());
}

// The `nsroute watch NAME` holding NAME's own watcher lock (one run in the foreground, or one
// an older nsroute started per NAME).
export function runningNameWatcher(name: string): { pid: number; startTime: number } | undefined {
  return holderOf(paths.watchLock(name));
}

// Opens /run/netns/NAME when it is the namespace nsroute created for NAME (its journal's
// inode): the fd `exec` hands to the command's wrapper, which enters nothing else
// (sys/wrapper.ts). undefined: not (or no longer) nsroute's.
export function openOwnNetns(name: string): number | undefined {
  const owner = new Journal(paths.journal(name)).netnsOwnership();
  if (typeof owner !== 'object') return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(netnsPath(name), constants.O_RDONLY | constants.O_NOFOLLOW);
    const st = fstatSync(fd, { bigint: true });
    // The inode number alone is reused once a namespace is freed: the ctime tells them apart.
    if (Number(st.ino) === owner.ino && (owner.ctime === undefined || st.ctimeNs.toString() === owner.ctime)) return fd;
  } catch {
    /* gone */
  }
  if (fd !== undefined) closeSync(fd);
  return undefined;
}
