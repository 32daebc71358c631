import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';

// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat). A pid
// alone is not an identity: pids are reused, pid + start time is not.
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const value = Number(rest[19]);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function isSameProcessAlive(pid: number, startTime: number): boolean {
  return processStartTime(pid) === startTime;
}

// Changes at every boot. State from another boot describes namespaces that no longer exist
// (/run is not always a tmpfs, so the run dir itself can survive a reboot).
// Read once per process (no process outlives a boot): every state is compared with it.
let boot: string | undefined;
export function bootId(): string {
  if (boot !== undefined) return boot;
  try {
    boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    boot = 'unknown';
  }
  return boot;
}

// The inode of a network namespace file (/proc/PID/ns/net or a /run/netns mount): equal
// inodes on nsfs are the same namespace. undefined when it is not a live namespace.
export function netnsInode(path: string): number | undefined {
  try {
    const st = statSync(path);
    return st.dev === statSync('/proc/self/ns/net').dev ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

// The processes whose network namespace is the one mounted at nsPath (what `ip netns pids`
// prints), read straight from /proc: no spawn, so every command can afford it.
export function netnsProcesses(nsPath: string): number[] {
  // A dead placeholder file (no nsfs mount on it) has some tmpfs inode number that could
  // equal a live namespace's: only an nsfs inode identifies a namespace.
  const ino = netnsInode(nsPath);
  return ino === undefined ? [] : netnsProcessesByInode(ino);
}

// The processes in the network namespace with this nsfs inode, whatever name it has (or none).
// `scan`: a netnsProcessScan() already made, so that N namespaces cost one pass over /proc.
export function netnsProcessesByInode(ino: number, scan?: NetnsScan): number[] {
  return [...((scan ?? netnsProcessScan()).get(ino) ?? [])];
}

// Every process's network namespace, by nsfs inode, in one pass over /proc.
export type NetnsScan = ReadonlyMap<number, readonly number[]>;

export function netnsProcessScan(): NetnsScan {
  const out = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let link: string;
    try {
      link = readlinkSync(`/proc/${entry}/ns/net`);
    } catch {
      continue; /* gone meanwhile, or a kernel thread */
    }
    const m = /^net:\[(\d+)\]$/.exec(link);
    if (!m) continue;
    const ino = Number(m[1]);
    const pids = out.get(ino);
    if (pids) pids.push(Number(entry));
    else out.set(ino, [Number(entry)]);
  }
  for (const pids of out.values()) pids.sort((a, b) => a - b);
  return out;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  startTime: number;
  command: string[];
  uid: number;
}

export function processInfo(pid: number): ProcessInfo | undefined {
  try {
    const startTime = processStartTime(pid);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uidLine = status.match(/^Uid:\s+(\d+)/m);
    const ppid = Number(status.match(/^PPid:\s+(\d+)/m)?.[1] ?? 0);
    if (startTime === undefined) return undefined;
    const comm = cmdline.length > 0 ? cmdline : [`[${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()}]`];
    return { pid, ppid, startTime, command: comm, uid: Number(uidLine?.[1] ?? -1) };
  } catch {
    return undefined;
  }
}
