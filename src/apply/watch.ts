import { execa } from 'execa';
import { withHostLock } from '../state/lock.js';
import { allStates, readState } from '../state/store.js';
import { guardPrefs } from '../plan/guard.js';
import { guardMissing } from './executors.js';
import { nftTableExists } from '../sys/nft.js';
import { uplinkRoutesIntact } from '../sys/ip.js';
import { repair } from './lifecycle.js';

// Keeps namespaces right while they are in use: follows netlink (`ip monitor`) and repairs
// (lifecycle.ts `repair`) when something nsroute relies on changes: the uplink goes down and
// up (the kernel deleted its routes), gets a new address, or a route or rule of nsroute's is
// deleted; and `nft monitor tables` for nsroute's table going (`nft flush ruleset`, a
// firewall reload). Repairs are debounced: a link going up brings a burst of events.
export interface Watcher {
  stop(): void;
}

export interface WatchOptions {
  names: () => string[]; // the namespaces to keep right (read on every repair)
  debounceMs?: number;
  goneCheckMs?: number; // how often to look whether the namespaces are still there
  onRepair?: (name: string, problems: string[]) => void;
  onGone?: () => void; // none of the namespaces is up any more (checked with the nft poll)
}

// Whether a line of `ip monitor link address route rule` concerns what the namespaces use:
// the uplink's default routes or its rule deleted (not a namespace's own route in the uplink
// table, which goes at every teardown), or the uplink device changing.
export function relevantEvent(line: string, devs: ReadonlySet<string>, tables: ReadonlySet<number>): boolean {
  const deleted = line.startsWith('Deleted ');
  const ours = /^Deleted (default|unreachable default|\d+:\s)/.test(line);
  // A fail-closed rule (plan/guard.ts) deleted.
  const pref = /^Deleted (\d+):\s/.exec(line)?.[1];
  if (pref !== undefined && Number(pref) >= guardPrefs().skip && Number(pref) <= guardPrefs().target) return true;
  for (const t of tables) if (ours && new RegExp(`\\b(table|lookup) ${t}\\b`).test(line)) return true;
  for (const d of devs) {
    const esc = d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // link state change ("3: ups: <...,UP,...>"), address added, route via the device added back
    if (new RegExp(`^(Deleted )?\\d+: ${esc}(@\\S+)?: <`).test(line)) return true;
    if (!deleted && new RegExp(`^\\d+: ${esc}\\s+inet6? `).test(line)) return true;
  }
  return false;
}

export function watchNamespaces(opts: WatchOptions): Watcher {
  const debounceMs = opts.debounceMs ?? 200;
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let again = false;
  let stopped = false;
  // What the events said since the last repair: an uplink change, or nsroute's table gone
  // (every change of another namespace replaces the table: a delete then an add, in one
  // transaction, which is no loss).
  let linkEvent = false;
  let tableGone = false;

  const targets = () =>
    opts.names().flatMap((n) => {
      const st = readState(n);
      return st && st.status === 'up' ? [st] : [];
    });

  // Looked at without the lock first: other namespaces coming and going replace nsroute's nft
  // table and touch the uplink table, and every watcher hears it; only a real loss is repaired.
  const broken = async (): Promise<boolean> => {
    const sts = targets();
    const uplinks = [...new Map(sts.flatMap((st) => (st.config.uplink ? [[st.config.uplink.table, st.config.uplink] as const] : []))).values()];
    const [nftOk, uplinksOk, guardGone] = await Promise.all([
      nftTableExists(),
      uplinkRoutesIntact(uplinks.map((u) => u.table)),
      guardMissing(allStates().map((s) => s.config)).catch(() => true),
    ]);
    return !nftOk || !uplinksOk || guardGone;
  };

  const runRepair = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const suspicious = linkEvent || tableGone;
      linkEvent = false;
      if (!suspicious) return;
      if (!(await broken())) {
        tableGone = false;
        return;
      }
      await withHostLock(async () => {
        for (const n of opts.names()) {
          const st = readState(n);
          if (!st || st.status !== 'up') continue;
          const problems = await repair(st);
          opts.onRepair?.(n, problems);
        }
      });
    } catch {
      /* a failed repair is retried at the next event */
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

  const monitor = execa('ip', ['monitor', 'link', 'address', 'route', 'rule'], { reject: false, buffer: false, cleanup: true, stdin: 'ignore', stderr: 'ignore' });
  let pending = '';
  monitor.stdout?.setEncoding('utf8');
  monitor.stdout?.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    const sts = targets();
    const devs = new Set(sts.flatMap((s) => (s.config.uplink ? [s.config.uplink.dev] : [])));
    const tables = new Set(sts.flatMap((s) => (s.config.uplink ? [s.config.uplink.table] : [])));
    if (lines.some((l) => relevantEvent(l, devs, tables))) {
      linkEvent = true;
      schedule();
    }
  });
  void monitor.catch(() => undefined);

  const nftMonitor = execa('nft', ['monitor', 'tables'], { reject: false, buffer: false, cleanup: true, stdin: 'ignore', stderr: 'ignore' });
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
    if (tableGone && targets().length > 0) schedule();
  });
  void nftMonitor.catch(() => undefined);

  const poll = setInterval(() => {
    if (targets().length === 0) opts.onGone?.();
  }, opts.goneCheckMs ?? 5000);
  poll.unref();
  // Whatever was deleted while the monitors were starting (the table, a route, a rule) would
  // go unseen: look once at everything, as after an event (runRepair looks before it locks).
  setTimeout(() => {
    if (targets().length === 0) return;
    linkEvent = true;
    void nftTableExists().then((ok) => {
      if (!ok) tableGone = true;
      schedule();
    });
  }, 500).unref();

  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      clearInterval(poll);
      monitor.kill('SIGTERM');
      nftMonitor.kill('SIGTERM');
    },
  };
}
