import { existsSync } from 'node:fs';
import { MARK_BASE, MAX_UPLINKS, RULE_PREF, TABLE_BASE, uplinkRuleArgs } from '../plan/plan.js';
import { parseRoutes, parseRules } from '../net/iproute-json.js';
import { renderNftRuleset } from '../net/nft.js';
import { ipIgnoringGone, ipJson } from '../sys/ip.js';
import { nftApply, nftTableExists } from '../sys/nft.js';
import { isDeadNetnsFile, removeIfExists, UntrustedFile } from '../sys/fsx.js';
import { forwardHolesPresent, removeForwardHoles } from '../sys/iptables.js';
import { withHostLock } from '../state/lock.js';
import { removeDeadJoins } from '../state/joins.js';
import { allStates, knownNames, readHostState, readState, writeState } from '../state/store.js';
import { namesWithFileRecords, nftMembers, nftReplies, recordedFiles, restoreSrcValidMark, syncGuard, undoNetnsFiles, undoStep } from './executors.js';
import { emptyReport, forgetEarlierBoots, hostWatched, recoverLost, refuseInsideNamespace, repair, startWatcher, stopLegacyWatcher, sweep, type SweepReport } from './lifecycle.js';
import { isLiveNetns, netnsPath } from './views.js';

// The unreachable fallback route nsroute puts in every uplink table (plan.ts): a table in
// nsroute's range holding it, and nothing but default routes, is one of ours.
const FALLBACK_METRIC = 4278190080;

// Uplink rules and tables nobody's state refers to any more (their state was lost). Only
// objects with nsroute's shape are touched: rule priority, mark range and table range, and a
// table holding nsroute's fallback route and nothing but default routes.
async function removeOrphanUplinks(report: SweepReport): Promise<void> {
  const used = new Set(allStates().flatMap((s) => (s.config.uplink ? [s.config.uplink.table] : [])));
  const inRange = (t: number | undefined): t is number => t !== undefined && t > TABLE_BASE && t <= TABLE_BASE + MAX_UPLINKS;
  const [rulesJson, routesJson] = await Promise.all([ipJson(['-4', '-N', 'rule', 'show']), ipJson(['-4', '-N', 'route', 'show', 'table', 'all'])]);
  for (const r of parseRules(rulesJson)) {
    if (r.priority !== RULE_PREF || !inRange(r.table) || used.has(r.table)) continue;
    if (r.fwmark === undefined || r.fwmark <= MARK_BASE || r.fwmark > MARK_BASE + MAX_UPLINKS) continue;
    await ipIgnoringGone(['rule', 'del', ...uplinkRuleArgs({ dev: '', table: r.table, mark: r.fwmark, pref: r.priority })]);
    report.removed.push({ object: 'rule', name: `fwmark 0x${r.fwmark.toString(16)} lookup ${r.table}` });
  }
  const routes = parseRoutes(routesJson).filter((r) => inRange(r.table) && !used.has(r.table));
  for (const table of new Set(routes.map((r) => r.table))) {
    const rs = routes.filter((r) => r.table === table);
    const ours = rs.every((r) => r.dst === 'default') && rs.some((r) => r.type === 'unreachable' && r.metric === FALLBACK_METRIC);
    if (!ours) continue;
    await ipIgnoringGone(['route', 'flush', 'table', String(table)]);
    report.removed.push({ object: 'route-table', name: String(table) });
  }
}

// Whether nsroute's cgroup parent exists (cgroup mode left something there).
async function cgroupLeftoversPossible(): Promise<boolean> {
  const { cgroup2Mount, cgroupParent } = await import('../sys/cgroup.js');
  const mount = cgroup2Mount();
  try {
    return mount !== undefined && existsSync(`${mount}/${cgroupParent()}`);
  } catch {
    return false;
  }
}

// /etc/netns/NAME files nsroute wrote for a NAME that has no state and no namespace any more.
function removeOrphanFiles(report: SweepReport): void {
  for (const name of namesWithFileRecords()) {
    if (readState(name)) continue;
    if (isLiveNetns(name)) {
      report.kept.push({ name, reason: `its files under /etc/netns/${name} belong to a namespace nsroute cannot read back; \`nsroute down ${name}\` after removing it by hand` });
      continue;
    }
    undoNetnsFiles(name, recordedFiles(name));
    if (isDeadNetnsFile(netnsPath(name))) removeIfExists(netnsPath(name));
    report.removed.push({ object: 'files', name: `/etc/netns/${name}` });
  }
}

// gc: everything `sweep` does for one NAME, for all of them, plus what only a full scan finds:
// namespaces whose run dir state was lost (recovered from the kernel's owner tags), and
// leftovers with nsroute's tags and no state behind them. Then the shared objects are made
// to match the states that remain: the nft table, and the forwarding sysctls once none do.
export async function gc(): Promise<SweepReport> {
  refuseInsideNamespace();
  return withHostLock(async () => {
    const report = emptyReport();
    await forgetEarlierBoots(report);
    await recoverLost(report);
    const names = new Set([...knownNames(), ...allStates().map((s) => s.name)]);
    for (const name of names) {
      try {
        await sweep(name, report);
      } catch (e) {
        // Its state or journal could have been written by someone else: reported, not acted on.
        if (e instanceof UntrustedFile) report.kept.push({ name, reason: `${e.message}; ${e.hint}` });
        // One NAME whose teardown fails (say, an uplink that cannot take its addresses back) must
        // not stop gc from cleaning up the others; it is reported, and its record kept for a retry.
        else report.failed.push({ name, error: (e as Error).message });
      }
    }
    removeDeadJoins();
    const watched: string[] = [];
    for (const st of allStates()) {
      if (st.status !== 'up') continue; // a teardown that failed above: not to be put back up
      for (const p of await repair(st)) report.kept.push({ name: st.name, reason: `could not restore ${p}` });
      // A watcher of this NAME alone, left by an older nsroute: the host watcher replaces it.
      // Written without its field, not changed in place: allStates' objects are shared (store.ts).
      if (stopLegacyWatcher(st)) {
        const { watcher: _stopped, ...own } = st;
        writeState(own);
        report.removed.push({ object: 'watcher', name: st.name });
      }
      if (hostWatched(st)) watched.push(st.name);
    }
    // Persistent namespaces whose watcher died (killed, or their state was recovered) get it again.
    if (watched.length > 0 && startWatcher()) report.watchers.push(...watched);
    await removeOrphanUplinks(report);
    const states = allStates();
    // The fail-closed rules cover exactly the namespaces that remain (leftovers go).
    for (const line of await syncGuard(states.map((s) => s.config))) {
      if (line.includes('rule del ')) report.removed.push({ object: 'rule', name: line.replace('rule del ', '') });
    }
    const hadTable = await nftTableExists();
    const configs = states.map((s) => s.config);
    if (states.length > 0 || hadTable) await nftApply(renderNftRuleset(nftMembers(configs), nftReplies(configs)));
    if (states.length === 0 && hadTable) report.removed.push({ object: 'nft-table', name: 'inet nsroute' });
    removeOrphanFiles(report);
    // cgroup mode's leftovers (loaded only on a host that has or had a cgroup-mode NAME).
    if (states.some((s) => s.config.mode === 'cgroup') || readHostState().routeLocalnet || (await cgroupLeftoversPossible())) {
      await (await import('./cgroup-steps.js')).gcCgroups(states.map((s) => s.config), report);
    }
    if (states.length === 0) {
      const host = readHostState();
      const none = { name: '', others: () => [] };
      if (host.forwarding || host.forwarding6) {
        await undoStep({ kind: 'ip-forward' }, none);
        await undoStep({ kind: 'ip6-forward' }, none);
        report.removed.push({ object: 'sysctl', name: 'forwarding (restored to the saved values)' });
      }
      for (const dev of Object.keys(host.srcValidMark ?? {})) {
        restoreSrcValidMark(dev);
        report.removed.push({ object: 'sysctl', name: `${dev} src_valid_mark (restored)` });
      }
      if ((await forwardHolesPresent()).length > 0) {
        await removeForwardHoles();
        report.removed.push({ object: 'iptables', name: 'NSROUTE-FORWARD' });
      }
    }
    return report;
  });
}

export function reportIsEmpty(r: SweepReport): boolean {
  return Object.values(r).every((v) => v.length === 0);
}
