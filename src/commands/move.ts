import { readFileSync, readdirSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { bringUp, release, sweep } from '../apply/lifecycle.js';
import { readMoves, writeMoves, type MoveRecord } from '../apply/moves.js';
import { validateName } from '../net/names.js';
import { callerContext } from '../policy/context.js';
import { allStates, readState, type Holder } from '../state/store.js';
import { withHostLock } from '../state/lock.js';
import { cgroupOf, localResolverSockets, moveToCgroup, requireCgroup2 } from '../sys/cgroup.js';
import { processInfo, processStartTime } from '../sys/proc.js';
import { loadProfile, requireRoot } from './options.js';

// `nsroute move NAME PID... [--tree]` and `nsroute move --out PID...` (issue 12): running
// processes into a cgroup-mode NAME and back. New connections take NAME's route; sockets a
// process already has keep the cgroup they were made in, so its open connections keep their
// path (reported per process). A cgroup move does not take children along (seed 000):
// --tree moves the descendants too.

export interface MoveOptions {
  tree?: boolean;
  out?: boolean;
  json?: boolean;
}

interface Moved {
  pid: number;
  command: string[];
  from: string;
  to: string;
  connections: number;
}

const PID_RE = /^[1-9][0-9]{0,9}$/;
const PF_KTHREAD = 0x00200000;

// Why a pid cannot be moved (one line), or undefined. `caller`: under sudo, only processes
// whose every uid is the caller's.
export function refusal(text: string, caller: { uid: number } | undefined): string | undefined {
  if (!PID_RE.test(text)) return `${JSON.stringify(text)} is not a process id`;
  const pid = Number(text);
  if (pid === 1) return 'pid 1 is the init process; nsroute never moves it';
  let status: string;
  let stat: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return `no process ${pid}`;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const flags = Number(fields[6]);
  if (pid === 2 || (Number.isFinite(flags) && flags & PF_KTHREAD)) return `${pid} is a kernel thread; only user processes can be moved`;
  const tgid = Number(status.match(/^Tgid:\s+(\d+)/m)?.[1]);
  if (tgid !== pid) return `${pid} is a thread of process ${tgid}, not a process; give ${tgid} (a move takes all its threads)`;
  if (pid === process.pid) return `${pid} is this nsroute`;
  if (caller) {
    const uids = (status.match(/^Uid:\s+(.*)$/m)?.[1] ?? '').trim().split(/\s+/).map(Number);
    if (uids.length === 0 || !uids.every((u) => u === caller.uid)) return `${pid} is not your process (uid ${uids[0] ?? '?'}); you may move only your own`;
  }
  return undefined;
}

function refuseAll(lines: string[], hint: string): never {
  for (const l of lines.slice(0, -1)) process.stderr.write(`nsroute: ${l}\n`);
  throw new UserError(lines[lines.length - 1]!, hint);
}

// All descendants of these pids (children first seen through /proc/PID/task/*/children).
function descendants(pids: readonly number[]): number[] {
  const out: number[] = [];
  const seen = new Set(pids);
  const queue = [...pids];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      let kids: number[] = [];
      try {
        kids = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
      } catch {
        /* gone */
      }
      for (const k of kids) if (!seen.has(k)) (seen.add(k), out.push(k), queue.push(k));
    }
  }
  return out;
}

// Established TCP connections of a process (its socket fds found in its namespace's
// /proc/net/tcp and tcp6 with state 01): what keeps its old path after a move.
export function openConnections(pid: number): number {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    return 0;
  }
  let n = 0;
  for (const file of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '01' && f[9] && inodes.has(f[9])) n++;
    }
  }
  return n;
}

function cgroupStates() {
  return allStates().filter((s) => s.config.mode === 'cgroup' && s.config.cgroup);
}

function within(cg: string | undefined, path: string): boolean {
  return cg !== undefined && (cg === path || cg.startsWith(`${path}/`));
}

function print(out: { name: string; moved: Moved[]; resolverSockets?: string[] }[], json: boolean | undefined, dir: 'in' | 'out'): void {
  if (json) {
    process.stdout.write(JSON.stringify(out.length === 1 ? out[0] : out) + '\n');
    return;
  }
  for (const { name, resolverSockets } of out) {
    if (resolverSockets && resolverSockets.length > 0) {
      process.stderr.write(
        `nsroute: note: this host has a local resolver (${resolverSockets.join(', ')}): lookups a moved process makes through it are made by that daemon on the host's routes, not via ${name}'s DNS; a program started with \`nsroute exec ${name}\` does not use it\n`,
      );
    }
  }
  for (const { name, moved } of out) {
    for (const m of moved) {
      const conn = m.connections === 0 ? 'no open connections' : `${m.connections} open connection(s), which keep their old path`;
      process.stdout.write(`moved ${m.pid} (${m.command.join(' ').slice(0, 40)}) ${dir === 'in' ? `into ${name}` : `out of ${name}`}: ${conn}\n`);
    }
  }
}

export async function runMove(args: string[], opts: MoveOptions): Promise<number> {
  requireRoot();
  const caller = callerContext();
  if (opts.out) return moveOut(args, opts, caller);
  const [name, ...texts] = args;
  if (name === undefined || texts.length === 0) throw new UserError('move needs NAME and at least one PID', 'e.g. nsroute move novpn 4242 (or `nsroute move --out PID...`)');
  validateName(name);
  if (opts.tree === undefined) opts.tree = false;
  const bad = texts.flatMap((t) => {
    const why = refusal(t, caller);
    return why ? [why] : [];
  });
  if (bad.length > 0) refuseAll(bad, 'nothing was moved; give the pids of running processes (`ps -o pid,uid,cmd`)');
  const existing = readState(name);
  if (existing && existing.config.mode !== 'cgroup') {
    throw new UserError(`${name} is up in ${existing.config.mode} mode; only a cgroup-mode NAME takes running processes`, `use another NAME with --mode cgroup (profile: mode = "cgroup")`);
  }
  const profile = loadProfile(name, {});
  if (!existing && profile.mode !== 'cgroup') {
    throw new UserError(`${name} is not up, and its profile does not say mode = "cgroup"`, `\`nsroute up ${name} --mode cgroup ...\` first, or set mode = "cgroup" in its profile`);
  }
  const mount = requireCgroup2();
  // Held by this command until the processes are in: NAME is not removed meanwhile.
  const holder: Holder = { pid: process.pid, startTime: processStartTime(process.pid) ?? 0, command: ['nsroute', 'move', name], user: caller?.name ?? 'root', since: new Date().toISOString() };
  const { state } = await bringUp({ profile, persistent: false, holder });
  try {
    if (state.config.mode !== 'cgroup') throw new UserError(`${name} is up in ${state.config.mode} mode; only a cgroup-mode NAME takes running processes`, 'use a NAME with --mode cgroup');
    const path = state.config.cgroup!.path;
    const moved = await withHostLock(async () => {
      const roots = texts.map(Number);
      const all = opts.tree ? [...roots, ...descendants(roots)] : roots;
      const records = readMoves(name);
      const out: Moved[] = [];
      for (const pid of all) {
        // Descendants are checked as the pids given were (another user's child stays).
        if (!roots.includes(pid) && refusal(String(pid), caller)) continue;
        const info = processInfo(pid);
        const from = cgroupOf(pid);
        if (!info || from === undefined) continue; // ended meanwhile
        const connections = openConnections(pid);
        if (from !== path) {
          // The first origin counts (a second move keeps where it really came from).
          if (!records.some((r) => r.pid === pid && r.startTime === info.startTime)) records.push({ pid, startTime: info.startTime, from });
          try {
            moveToCgroup(mount, path, pid);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ESRCH') continue; // ended meanwhile (a short-lived child)
            throw e;
          }
          writeMoves(name, records);
        }
        out.push({ pid, command: info.command, from, to: path, connections });
      }
      return out;
    });
    print([{ name, moved, resolverSockets: localResolverSockets() }], opts.json, 'in');
  } finally {
    await release(name, holder);
  }
  return 0;
}

async function moveOut(texts: string[], opts: MoveOptions, caller: { uid: number } | undefined): Promise<number> {
  if (texts.length === 0) throw new UserError('move --out needs at least one PID', 'e.g. nsroute move --out 4242');
  const bad = texts.flatMap((t) => {
    const why = refusal(t, caller);
    return why ? [why] : [];
  });
  if (bad.length > 0) refuseAll(bad, 'nothing was moved; give the pids of running processes (`ps -o pid,uid,cmd`)');
  const mount = requireCgroup2();
  const result = await withHostLock(async () => {
    const states = cgroupStates();
    const pids = texts.map(Number);
    const owner = new Map<number, string>();
    const notIn: string[] = [];
    for (const pid of pids) {
      const st = states.find((s) => within(cgroupOf(pid), s.config.cgroup!.path));
      if (st) owner.set(pid, st.name);
      else notIn.push(`${pid} is in no cgroup-mode NAME (its cgroup is /${cgroupOf(pid) ?? '?'})`);
    }
    if (notIn.length > 0) refuseAll(notIn, 'nothing was moved; `nsroute list` shows the NAMEs and their processes');
    // Where a process without a record goes: the cgroup this nsroute runs in.
    const fallback = cgroupOf(process.pid) ?? '';
    const byName = new Map<string, Moved[]>();
    for (const pid of pids) {
      const name = owner.get(pid)!;
      const records = readMoves(name);
      const info = processInfo(pid);
      if (!info) continue;
      const rec = records.find((r) => r.pid === pid && r.startTime === info.startTime);
      const to = rec && existsSync(join(mount, rec.from)) ? rec.from : fallback;
      const from = cgroupOf(pid) ?? '';
      const connections = openConnections(pid);
      try {
        moveToCgroup(mount, to, pid);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
      writeMoves(name, records.filter((r: MoveRecord) => r !== rec));
      byName.set(name, [...(byName.get(name) ?? []), { pid, command: info.command, from, to, connections }]);
    }
    // A NAME whose members all left goes like an ephemeral namespace whose last command ended.
    for (const name of byName.keys()) await sweep(name);
    return [...byName.entries()].map(([name, moved]) => ({ name, moved }));
  });
  print(result, opts.json, 'out');
  return 0;
}
