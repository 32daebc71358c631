import { existsSync, watch as fsWatch, lstatSync, type FSWatcher } from 'node:fs';
import { execa } from 'execa';
import { spawnToolsDirectly } from '../sys/runner.js';
import { withHostLock } from '../state/lock.js';
import { paths } from '../state/paths.js';
import { isFromEarlierBoot, knownNames, onStateRead, readState, type NamespaceState } from '../state/store.js';
import type { NamespaceConfig } from '../plan/types.js';
import { guardPrefs } from '../plan/guard.js';
import { guardMissing } from './executors.js';
import { hasNetns } from './hostmode.js';
import { nftTableExists } from '../sys/nft.js';
import { uplinkRoutesIntact } from '../sys/ip.js';
import { hostWatched, repair } from './lifecycle.js';
import { crashPoint } from './crash.js';

// Keeps namespaces right while they are in use: follows netlink (`ip monitor`) and repairs
// (lifecycle.ts `repair`) when something nsroute relies on changes: the uplink goes down and
// up (the kernel deleted its routes), gets a new address, or a route or rule of nsroute's is
// deleted; and `nft monitor tables` for nsroute's table going (`nft flush ruleset`, a
// firewall reload). Repairs are debounced: a link going up brings a burst of events.
//
// Two scopes. Given names (an `exec`'s own watcher, `nsroute watch NAME...`): only those.
// Without names: the host's one watcher (`nsroute watch`, started by `up`), for every
// persistent namespace not brought up with --no-watch. Its work per event is O(what the
// event concerns), not O(namespaces): an index (uplink device -> tables -> NAMEs, and every
// NAME's config) is kept in memory and refreshed by looking at what changed under the run
// dir's ns/ (fs.watch on it, and under the lock a stat of each state file, read again only
// when it changed); a netlink line is a map lookup; a repair works on one NAME per uplink
// table the event concerns, and the configs of the others (which the shared nft table and
// fail-closed rules cover) come from the index.
export interface Watcher {
  stop(): void;
}

export interface WatchOptions {
  names?: readonly string[]; // the namespaces to keep right; absent: the host watcher
  debounceMs?: number;
  pollMs?: number; // how often to look whether there is anything left to watch
  onRepair?: (name: string, problems: string[], read: string[]) => void;
  // Given names: none of them is up any more. Host watcher: no persistent namespace is left to
  // watch, seen under the host lock, which is held while this runs (so an `up` cannot start
  // between this decision and the watcher giving up its lock: it must do that here).
  onGone?: () => void;
  // Host watcher: false once it is not the host's watcher any more (its lock file went with
  // the run dir): it stops touching the run dir.
  alive?: () => boolean;
}

// What a line of `ip monitor link address route rule` is about, if anything nsroute relies on:
// a device changing state or getting an address (the uplink?), a deleted default route or
// rule of a table (nsroute's uplink table?), a deleted fail-closed rule (plan/guard.ts). Not
// a namespace's own route in the uplink table, which goes at every teardown. Constant work.
export interface EventSubject {
  dev?: string;
  table?: number;
  guard?: boolean;
}

const LINK_RE = /^(?:Deleted )?\d+: ([^\s:@]+)(?:@\S+)?: </;
const ADDR_RE = /^\d+: ([^\s:@]+)\s+inet6? /;
const OURS_RE = /^Deleted (?:default|unreachable default|(\d+):\s)/;
const TABLE_RE = /\b(?:table|lookup) (\d+)\b/;

export function eventSubject(line: string): EventSubject | undefined {
  const ours = OURS_RE.exec(line);
  if (ours) {
    const pref = ours[1];
    if (pref !== undefined && Number(pref) >= guardPrefs().skip && Number(pref) <= guardPrefs().target) return { guard: true };
    const table = TABLE_RE.exec(line)?.[1];
    if (table !== undefined) return { table: Number(table) };
  }
  const dev = LINK_RE.exec(line)?.[1] ?? (line.startsWith('Deleted ') ? undefined : ADDR_RE.exec(line)?.[1]);
  return dev !== undefined ? { dev } : undefined;
}

// Whether a line concerns these uplink devices and tables (or the fail-closed rules).
export function relevantEvent(line: string, devs: ReadonlySet<string>, tables: ReadonlySet<number>): boolean {
  const s = eventSubject(line);
  return !!s && (s.guard === true || (s.dev !== undefined && devs.has(s.dev)) || (s.table !== undefined && tables.has(s.table)));
}

interface Entry {
  state: NamespaceState;
  stamp: string; // inode + mtime + size of state.json when read: a write replaces the file
}

function stampOf(name: string): string | undefined {
  try {
    const st = lstatSync(paths.state(name));
    return st.isFile() ? `${st.ino}:${st.mtimeMs}:${st.ctimeMs}:${st.size}` : undefined;
  } catch {
    return undefined;
  }
}

// The states of the namespaces in scope, read once each and again only when their file changed.
export class StateIndex {
  readonly entries = new Map<string, Entry>();
  private readonly byTable = new Map<number, Set<string>>();
  private readonly tablesByDev = new Map<string, Set<number>>();

  constructor(private readonly scope: () => readonly string[]) {}

  // Every name in scope: a stat each, a read for those whose file changed. Dropped: gone ones.
  syncAll(): void {
    const names = new Set(this.scope());
    for (const n of [...this.entries.keys()]) if (!names.has(n)) this.drop(n);
    for (const n of names) this.syncOne(n);
  }

  syncOne(name: string): void {
    const stamp = stampOf(name);
    const had = this.entries.get(name);
    if (stamp === undefined) {
      if (had) this.drop(name);
      return;
    }
    if (had?.stamp === stamp) return;
    let st: NamespaceState | undefined;
    try {
      st = readState(name);
    } catch {
      st = undefined; // untrusted or corrupt: the commands report it; nothing to keep right here
    }
    if (had) this.drop(name);
    if (!st || isFromEarlierBoot(st)) return;
    this.entries.set(name, { state: st, stamp });
    const u = st.config.uplink;
    if (u) {
      this.setOf(this.byTable, u.table).add(name);
      this.setOf(this.tablesByDev, u.dev).add(u.table);
    }
  }

  private drop(name: string): void {
    const u = this.entries.get(name)?.state.config.uplink;
    this.entries.delete(name);
    if (!u) return;
    const names = this.byTable.get(u.table);
    names?.delete(name);
    if (names?.size === 0) {
      this.byTable.delete(u.table);
      for (const [dev, tables] of this.tablesByDev) {
        tables.delete(u.table);
        if (tables.size === 0) this.tablesByDev.delete(dev);
      }
    }
  }

  private setOf<K, V>(m: Map<K, Set<V>>, k: K): Set<V> {
    let s = m.get(k);
    if (!s) m.set(k, (s = new Set()));
    return s;
  }

  tablesOfDev(dev: string): ReadonlySet<number> | undefined {
    return this.tablesByDev.get(dev);
  }
  namesOfTable(table: number): readonly string[] {
    return [...(this.byTable.get(table) ?? [])];
  }
  allTables(): number[] {
    return [...this.byTable.keys()];
  }
  configs(): NamespaceConfig[] {
    return [...this.entries.values()].map((e) => e.state.config);
  }
}

// The monitors end with the watcher even when it is SIGKILLed (execa's cleanup cannot run
// then, and a monitor would only notice at its next write): util-linux's setpriv sets their
// parent-death signal before it executes them.
function monitorArgv(argv: [string, ...string[]]): [string, string[]] {
  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  return setpriv ? [setpriv, ['--pdeathsig', 'TERM', '--', ...argv]] : [argv[0], argv.slice(1)];
}

export function watchNamespaces(opts: WatchOptions): Watcher {
  spawnToolsDirectly();
  const host = opts.names === undefined;
  const debounceMs = opts.debounceMs ?? 200;
  const alive = opts.alive ?? (() => true);
  const explicit = opts.names ?? [];
  // The run dir's ns/ is listed only while it is there: the watcher never creates the run dir.
  const index = new StateIndex(() => (host ? (alive() ? knownNames() : []) : explicit));
  // NSROUTE_TEST_WATCH_READS: each repair line says which state files were read to make it (tests
  // prove a repair of one NAME reads no other NAME's state).
  let read: string[] = [];
  if (process.env.NSROUTE_TEST_WATCH_READS) onStateRead((n) => read.push(n));
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let again = false;
  let stopped = false;
  // What the events said since the last repair: uplink tables that may have lost routes or
  // their rule, and whether what all namespaces share (nft table, fail-closed rules) may be gone.
  // Every change of another namespace replaces the nft table (a delete then an add, in one
  // transaction, which is no loss): only a delete not followed by an add counts.
  const tables = new Set<number>();
  let shared = false;
  let tableGone = false;

  const watched = (st: NamespaceState) => (host ? hostWatched(st) : st.status === 'up');

  // The namespaces whose repair puts back what the event concerns (the index is exact under
  // the lock): per uplink table, one per kind of use of it (IPv6 NAT puts its own route in
  // the table; a replies policy has its own nft objects); for what all share, any one.
  const pick = (names: readonly string[], done: Set<string>): NamespaceState[] => {
    const out: NamespaceState[] = [];
    const kinds = new Set<string>();
    for (const n of names) {
      const st = index.entries.get(n)?.state;
      if (!st || !watched(st)) continue;
      const kind = `${st.config.mode}:${st.config.ipv6 === 'nat'}:${st.config.via6 ?? ''}`;
      if (kinds.has(kind)) continue;
      kinds.add(kind);
      if (!done.has(n)) out.push(st);
    }
    return out;
  };

  // Looked at without the lock first: other namespaces coming and going touch the uplink
  // tables and replace the nft table; only a real loss is repaired.
  const broken = async (ts: number[], sharedToo: boolean): Promise<boolean> => {
    const [nftOk, uplinksOk, guardGone] = await Promise.all([
      sharedToo ? nftTableExists() : true,
      uplinkRoutesIntact(ts),
      sharedToo ? guardMissing(index.configs()).catch(() => true) : false,
    ]);
    return !nftOk || !uplinksOk || guardGone;
  };

  // A repair that failed (the lock not had in time, a tool failing under load) is tried again
  // on its own, later each time up to a minute: the loss may bring no further event.
  let retryMs = 0;
  const runRepair = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    // What this run looks at is taken from the flags now: an event that arrives while it looks
    // (the nft table deleted just after its check found it there) sets them again for the next run.
    const ts = [...tables];
    const sharedToo = shared || tableGone;
    tables.clear();
    shared = false;
    tableGone = false;
    try {
      if ((ts.length === 0 && !sharedToo) || !alive()) return;
      const isBroken = await broken(ts, sharedToo);
      await crashPoint('watch', 0);
      if (!isBroken || !alive()) return;
      await withHostLock(async () => {
        read = [];
        // Exact under the lock: what a namespace that came or went meanwhile changed.
        index.syncAll();
        const done = new Set<string>();
        const targets = ts.flatMap((t) => pick(index.namesOfTable(t), done).map((st) => (done.add(st.name), st)));
        // A namespace first: its repair also puts back the fail-closed rules (a host mode has none).
        if (sharedToo && targets.length === 0) targets.push(...pick([...index.entries.keys()], done).sort((a, b) => Number(hasNetns(b.config)) - Number(hasNetns(a.config))).slice(0, 1));
        for (const st of targets) {
          // The host watcher's index holds every namespace: the nft table and the fail-closed
          // rules are rendered from it, without reading every state file again.
          const others = host ? index.configs().filter((c) => c.name !== st.name) : undefined;
          const problems = await repair(st, others);
          opts.onRepair?.(st.name, problems, read);
        }
      });
      retryMs = 0;
    } catch {
      for (const t of ts) tables.add(t);
      if (sharedToo) shared = true;
      retryMs = Math.min(Math.max(retryMs * 2, 1000), 60_000);
      if (!stopped) setTimeout(schedule, retryMs).unref();
    } finally {
      running = false;
      if (again && !stopped) {
        again = false;
        schedule();
      }
    }
  };

  const schedule = () => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void runRepair(), debounceMs);
  };

  const monitor = execa(...monitorArgv(['ip', 'monitor', 'link', 'address', 'route', 'rule']), { reject: false, buffer: false, cleanup: true, stdin: 'ignore', stderr: 'ignore' });
  let pending = '';
  monitor.stdout?.setEncoding('utf8');
  monitor.stdout?.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    let hit = false;
    for (const l of lines) {
      const s = eventSubject(l);
      if (!s) continue;
      if (s.guard) shared = hit = true;
      if (s.table !== undefined && index.namesOfTable(s.table).length > 0) (tables.add(s.table), (hit = true));
      if (s.dev !== undefined) for (const t of index.tablesOfDev(s.dev) ?? []) (tables.add(t), (hit = true));
    }
    if (hit) schedule();
  });
  void monitor.catch(() => undefined);

  const nftMonitor = execa(...monitorArgv(['nft', 'monitor', 'tables']), { reject: false, buffer: false, cleanup: true, stdin: 'ignore', stderr: 'ignore' });
  nftMonitor.stdout?.setEncoding('utf8');
  let nftPending = '';
  nftMonitor.stdout?.on('data', (chunk: string) => {
    // A line can arrive in pieces ("delete table " + "inet nsroute"): only whole lines count.
    nftPending += chunk;
    const lines = nftPending.split('\n');
    nftPending = lines.pop() ?? '';
    for (const l of lines) {
      if (/^delete table inet nsroute\b/.test(l)) tableGone = true;
      else if (/^add table inet nsroute\b/.test(l)) tableGone = false;
    }
    if (tableGone && index.entries.size > 0) schedule();
  });
  void nftMonitor.catch(() => undefined);

  // Nothing left to watch: given names all gone; for the host watcher no persistent namespace
  // to keep right, decided again under the host lock (an `up` waiting for it then finds this
  // watcher gone, and starts the next one).
  let ending = false;
  const checkGone = async () => {
    if (stopped || ending) return;
    if (!alive()) return opts.onGone?.();
    index.syncAll();
    const left = [...index.entries.values()].some((e) => watched(e.state));
    if (left) return;
    if (!host) return opts.onGone?.();
    ending = true;
    try {
      await withHostLock(async () => {
        index.syncAll();
        if (!alive() || ![...index.entries.values()].some((e) => watched(e.state))) opts.onGone?.();
      });
    } catch {
      /* looked at again at the next poll */
    } finally {
      ending = false;
    }
  };

  index.syncAll();
  const poll = setInterval(() => void checkGone(), opts.pollMs ?? 5000);
  poll.unref();

  // The host watcher hears of namespaces coming and going from ns/ itself (a directory each).
  let dirWatch: FSWatcher | undefined;
  let dirTimer: NodeJS.Timeout | undefined;
  const dirty = new Set<string>();
  if (host) {
    try {
      dirWatch = fsWatch(paths.nsRoot(), { persistent: false }, (_event, file) => {
        if (typeof file === 'string' && file !== '' && !file.startsWith('.')) dirty.add(file);
        if (dirTimer) return;
        dirTimer = setTimeout(() => {
          dirTimer = undefined;
          if (!alive()) return;
          for (const n of dirty) index.syncOne(n);
          dirty.clear();
          if (![...index.entries.values()].some((e) => watched(e.state))) void checkGone();
        }, 100);
      });
      dirWatch.on('error', () => undefined);
    } catch {
      /* no ns/ (yet): the poll still looks */
    }
  }

  // Whatever was deleted while the monitors were starting (the table, a route, a rule) would
  // go unseen: look once at everything, as after an event (runRepair looks before it locks).
  setTimeout(() => {
    if (index.entries.size === 0) return;
    for (const t of index.allTables()) tables.add(t);
    shared = true;
    schedule();
  }, 500).unref();

  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (dirTimer) clearTimeout(dirTimer);
      clearInterval(poll);
      dirWatch?.close();
      monitor.kill('SIGTERM');
      nftMonitor.kill('SIGTERM');
    },
  };
}
