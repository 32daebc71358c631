// One watcher for the host (issue 11): persistent namespaces share one `nsroute watch`
// (RUN/watch.lock) instead of a node process plus `ip monitor` and `nft monitor` each; it
// repairs each NAME, does work per event only for what the event concerns (it reads no other
// NAME's state), ends with the last persistent NAME, and gc starts it again after a SIGKILL.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, FAST_GW, NSROUTE_JS, SLOW_GW, waitFor, type Snapshot, type World } from '../world/world.js';
import { expectOk, hostWatcherPid, PATH4, readIfExists, show, statusJson, useWorld } from '../world/helpers.js';
import { kindOf, nsrouteProcesses } from '../world/procs.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const watcherPid = () => hostWatcherPid(w);

// The kinds of this world's nsroute processes still running, sorted: ["ip monitor", "nft monitor", "watch"].
const kinds = () => nsrouteProcesses(w.runDir).map((p) => kindOf(p)).sort();
const ONE_WATCHER = ['ip monitor', 'nft monitor', 'watch'];

interface LogLine {
  name?: string;
  repaired?: boolean;
  read?: string[];
  watcher?: string;
}
const logLines = (): LogLine[] =>
  (readIfExists(join(w.runDir, 'watch.log')) ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

async function defaultBack(table: number, gw: string): Promise<void> {
  await waitFor(async () => (await w.inHost(['ip', 'route', 'show', 'table', String(table)])).stdout.includes(`default via ${gw}`), `the default route of table ${table} back`);
}

describe('the host watcher', () => {
  it('three persistent NAMEs: one watcher, each repaired alone, gone with the last down', async () => {
    const [a, b, c] = ['hw1', 'hw2', 'hw3'].map((s) => w.name(s));
    const env = { NSROUTE_TEST_WATCH_READS: '1' };
    expectOk(await w.nsroute(['up', a!, '--via', SLOW_GW, '--dns', DNS_SERVER], { env }));
    expectOk(await w.nsroute(['up', b!, '--via', FAST_GW, '--dns', DNS_SERVER], { env }));
    expectOk(await w.nsroute(['up', c!, '--via', SLOW_GW, '--dns', DNS_SERVER], { env }));
    try {
      await waitFor(() => watcherPid() !== undefined && kinds().join() === ONE_WATCHER.join(), 'one watcher and its two monitors');
      const pid = watcherPid()!;
      const ta = (await statusJson(w, a!)).table!;
      const tb = (await statusJson(w, b!)).table!;
      expect(ta).not.toBe(tb);
      // The look the watcher takes once its monitors run finds nothing to repair.
      await new Promise((r) => setTimeout(r, 1500));
      // One repair first: under the lock it brings its index of the states up to date (b and c
      // were written after it started; on a loaded machine their fs.watch events may not have
      // been handled yet), so the repair measured next reads only what it repairs.
      let before = logLines().length;
      expectOk(await w.inHost(['ip', 'route', 'del', 'default', 'via', SLOW_GW, 'table', String(ta)]));
      await defaultBack(ta, SLOW_GW);
      await waitFor(() => logLines().length > before, 'the first repair logged');
      await new Promise((r) => setTimeout(r, 500));
      before = logLines().length;

      expectOk(await w.inHost(['ip', 'route', 'del', 'default', 'via', SLOW_GW, 'table', String(ta)]));
      await defaultBack(ta, SLOW_GW);
      await waitFor(() => logLines().length > before, 'the repair logged');
      const slowRepairs = logLines().slice(before);
      expect(slowRepairs.every((l) => l.repaired && (l.name === a || l.name === c)), JSON.stringify(slowRepairs)).toBe(true);
      // Structurally O(changed): no other NAME's state was read to repair the slow uplink's table.
      expect(slowRepairs.flatMap((l) => l.read ?? []), JSON.stringify(slowRepairs)).not.toContain(b);

      const mid = logLines().length;
      expectOk(await w.inHost(['ip', 'route', 'del', 'default', 'via', FAST_GW, 'table', String(tb)]));
      await defaultBack(tb, FAST_GW);
      await waitFor(() => logLines().length > mid, 'the repair logged');
      const fastRepairs = logLines().slice(mid);
      expect(fastRepairs.map((l) => l.name), JSON.stringify(fastRepairs)).toEqual([b]);
      expect(fastRepairs.flatMap((l) => l.read ?? []), JSON.stringify(fastRepairs)).not.toContain(a);
      expect(fastRepairs.flatMap((l) => l.read ?? []), JSON.stringify(fastRepairs)).not.toContain(c);

      // A flushed ruleset: nsroute's table (members of all three) and the traffic come back.
      expectOk(await w.inHost(['nft', 'flush', 'ruleset']));
      await waitFor(async () => (await w.inHost(['nft', 'list', 'table', 'inet', 'nsroute'])).exitCode === 0, 'the nft table back');
      for (const [n, gw] of [[a, 'slow'], [b, 'fast'], [c, 'slow']] as const) {
        const r = await w.nsroute(['exec', n!, '--', ...PATH4]);
        expect(r.stdout.trim(), show(r)).toMatch(new RegExp(`^${gw} `));
      }
      // Still the same one watcher.
      expect(watcherPid()).toBe(pid);
      expect(kinds()).toEqual(ONE_WATCHER);

      expectOk(await w.nsroute(['down', a!]));
      expectOk(await w.nsroute(['down', b!]));
      expect(watcherPid()).toBe(pid); // c is still up
    } finally {
      for (const n of [a, b, c]) await w.nsroute(['down', n!]);
    }
    await waitFor(() => kinds().length === 0, 'no nsroute process left after the last down');
    expect(logLines().at(-1)).toMatchObject({ watcher: 'ended' });
    expect(await w.snapshot()).toEqual(clean);
  });

  it('is started again by gc after a SIGKILL (its monitors end with it), and not for up --no-watch', async () => {
    const n = w.name('hk1');
    const quiet = w.name('hk2');
    expectOk(await w.nsroute(['up', quiet, '--via', SLOW_GW, '--no-watch']));
    expect(watcherPid()).toBeUndefined();
    const noneGc = await w.nsroute(['gc', '--json']);
    expectOk(noneGc);
    expect(JSON.parse(noneGc.stdout).watchers).toEqual([]);
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    try {
      await waitFor(() => watcherPid() !== undefined && kinds().join() === ONE_WATCHER.join(), 'the watcher and its monitors');
      const first = watcherPid()!;
      const monitors = nsrouteProcesses(w.runDir).filter((p) => p.pid !== first).map((p) => p.pid);
      process.kill(first, 'SIGKILL');
      await waitFor(() => watcherPid() === undefined, 'the watcher gone');
      await waitFor(() => monitors.every((m) => readIfExists(`/proc/${m}/stat`) === null), 'its monitors gone with it');
      const r = await w.nsroute(['gc', '--json']);
      expectOk(r);
      expect(JSON.parse(r.stdout).watchers).toEqual([n]);
      await waitFor(() => watcherPid() !== undefined && kinds().join() === ONE_WATCHER.join(), 'a new watcher');
      expect(watcherPid()).not.toBe(first);
      const again = await w.nsroute(['gc', '--json']);
      expect(JSON.parse(again.stdout).watchers).toEqual([]);
      // A second host watcher exits at once.
      const second = await w.nsroute(['watch']);
      expectOk(second);
      expect(second.stderr).toBe(`nsroute: the namespaces are watched already by pid ${watcherPid()}\n`);
      // `watch NAME` leaves a NAME the host watcher covers to it, and watches a --no-watch one.
      const covered = await w.nsroute(['watch', n]);
      expectOk(covered);
      expect(covered.stderr).toBe(`nsroute: ${n} is watched already by pid ${watcherPid()}\n`);
    } finally {
      await w.nsroute(['down', n]);
      await w.nsroute(['down', quiet]);
    }
    await waitFor(() => kinds().length === 0, 'no nsroute process left');
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a per-NAME watcher left by an older nsroute is stopped by gc, which starts the host watcher', async () => {
    const n = w.name('hl1');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--no-watch']));
    try {
      // What an older `up` did: `nsroute watch NAME --json` in the background, its output in
      // ns/NAME/watch.log, its pid and start time in the state.
      const log = join(w.runDir, 'ns', n, 'watch.log');
      const r = await w.inHost(['sh', '-c', `setsid ${process.execPath} ${NSROUTE_JS} watch ${n} --json >>${log} 2>&1 </dev/null & echo $!`]);
      expectOk(r);
      const legacy = Number(r.stdout.trim());
      await waitFor(() => (readIfExists(join(w.runDir, 'ns', n, 'watch.lock')) ?? '').includes(`"pid":${legacy}`), 'the old watcher to take its lock');
      const statePath = join(w.runDir, 'ns', n, 'state.json');
      const st = JSON.parse(readFileSync(statePath, 'utf8')) as Record<string, unknown>;
      const stat = readFileSync(`/proc/${legacy}/stat`, 'utf8');
      st.watcher = { pid: legacy, startTime: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) };
      delete st.noWatch;
      writeFileSync(statePath, JSON.stringify(st, null, 2) + '\n');
      expect(watcherPid()).toBeUndefined();

      const gc = await w.nsroute(['gc', '--json']);
      expectOk(gc);
      const report = JSON.parse(gc.stdout) as { watchers: string[]; removed: { object: string; name: string }[] };
      expect(report.removed).toContainEqual({ object: 'watcher', name: n });
      expect(report.watchers).toEqual([n]);
      await waitFor(() => readIfExists(`/proc/${legacy}/stat`) === null, 'the old watcher to end');
      await waitFor(() => watcherPid() !== undefined && kinds().join() === ONE_WATCHER.join(), 'one host watcher and nothing else');
      expect(JSON.parse(readFileSync(statePath, 'utf8'))).not.toHaveProperty('watcher');
    } finally {
      await w.nsroute(['down', n]);
    }
    await waitFor(() => kinds().length === 0, 'no nsroute process left');
    expect(await w.snapshot()).toEqual(clean);
  });
});
