// gc and the lifecycle edge cases around it: SIGKILL of `nsroute exec` (the command keeps
// running and keeps its network; the namespace goes after it ends), daemons left behind,
// the run dir removed by hand while namespaces exist, down twice, down of an unknown NAME,
// and gc with nothing to do.
import { existsSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, HOST_SLOW_ADDR, NSROUTE_JS, SLOW_GW, SLOW_GW6, waitFor, type Snapshot, type World } from '../world/world.js';
import { expectOk, holdScript, hostWatcherPid, marker, PATH4, readIfExists, show, statusJson, waitForFile, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const ROUTE = ['--via', SLOW_GW, '--dns', DNS_SERVER];

interface Report {
  forgotten: string[];
  recovered: string[];
  rolledBack: string[];
  finished: string[];
  tornDown: string[];
  droppedHolders: { name: string; pid: number; command: string[] }[];
  foundProcesses: { name: string; pids: number[] }[];
  removed: { object: string; name: string }[];
  kept: { name: string; reason: string }[];
  watchers: string[];
}

async function gc(): Promise<Report> {
  const r = await w.nsroute(['gc', '--json']);
  expectOk(r);
  return JSON.parse(r.stdout) as Report;
}

async function slowPath(name: string): Promise<string> {
  const r = await w.nsroute(['exec', name, ...ROUTE, '--', ...PATH4]);
  expect(r.exitCode, show(r)).toBe(0);
  return r.stdout.trim();
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('gc with nothing to do, down twice, down of an unknown NAME', () => {
  it('gc on a clean host does nothing and says so', async () => {
    const text = await w.nsroute(['gc']);
    expectOk(text);
    expect(text.stdout.trim()).toBe('nothing to clean up');
    const report = await gc();
    expect(Object.values(report).every((v) => Array.isArray(v) && v.length === 0), JSON.stringify(report)).toBe(true);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('gc leaves a namespace in use alone', async () => {
    const n = w.name('g0');
    expectOk(await w.nsroute(['up', n, ...ROUTE]));
    const up = await w.snapshot();
    try {
      const report = await gc();
      expect(report.tornDown).toEqual([]);
      expect(report.rolledBack).toEqual([]);
      expect(await w.snapshot()).toEqual(up);
      expect(await slowPath(n)).toBe(`slow ${HOST_SLOW_ADDR}`);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
  });

  it('down of an unknown NAME and a second down both succeed and change nothing', async () => {
    const unknown = await w.nsroute(['down', w.name('never'), '--json']);
    expectOk(unknown);
    expect(JSON.parse(unknown.stdout)).toEqual({ name: w.name('never'), wasUp: false, ended: [] });
    const n = w.name('g1');
    expectOk(await w.nsroute(['up', n, ...ROUTE]));
    const first = await w.nsroute(['down', n, '--json']);
    expect(JSON.parse(first.stdout)).toMatchObject({ wasUp: true });
    const second = await w.nsroute(['down', n]);
    expectOk(second);
    expect(second.stderr).toMatch(/not up; nothing to do/);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('the watcher of the persistent namespaces', () => {
  const watcher = () => hostWatcherPid(w);

  it('is started again by gc when it died, and not for up --no-watch', async () => {
    const n = w.name('wd1');
    const quiet = w.name('wd2');
    // The watcher of the tests before ends by itself once it sees their last NAME gone
    // (watch.ts checkGone): not necessarily before the next command.
    await waitFor(() => watcher() === undefined, 'the watcher of the namespaces before to end');
    expectOk(await w.nsroute(['up', quiet, ...ROUTE, '--no-watch']));
    expect(watcher()).toBeUndefined();
    expectOk(await w.nsroute(['up', n, ...ROUTE]));
    const first = (await waitFor(() => watcher(), 'the watcher to run'))!;
    process.kill(first, 'SIGKILL');
    await waitFor(() => !pidAlive(first), 'the watcher to die');
    expect((await gc()).watchers).toEqual([n]);
    const second = (await waitFor(() => watcher(), 'the new watcher to run'))!;
    expect(second).not.toBe(first);
    expect((await gc()).watchers).toEqual([]);
    expectOk(await w.nsroute(['down', n]));
    await waitFor(() => !pidAlive(second), 'the watcher to end with the last persistent namespace');
    expectOk(await w.nsroute(['down', quiet]));
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('SIGKILL of nsroute exec', () => {
  it('the command keeps running and keeps its network; after it ends, gc removes the namespace', async () => {
    const n = w.name('k1');
    const [ready, stop] = [marker(w, 'k1-ready'), marker(w, 'k1-stop')];
    const p = w.spawnNsroute(['exec', n, ...ROUTE, '--', ...holdScript(ready, stop)]);
    await waitForFile(ready);
    const commandPid = (await statusJson(w, n)).holders[0]!.pid; // nsroute itself
    expect(commandPid).toBe(p.pid);
    p.kill('SIGKILL');
    await waitFor(() => !pidAlive(p.pid), 'nsroute to die');

    // The namespace is still there for the command; list shows the process as its holder.
    const st = await statusJson(w, n);
    expect(st.holders).toEqual([expect.objectContaining({ kind: 'process', command: ['sh', '-c', expect.stringContaining(stop)] })]);
    const report = await gc();
    expect(report.droppedHolders).toEqual([expect.objectContaining({ name: n, pid: p.pid })]);
    expect(report.foundProcesses).toEqual([expect.objectContaining({ name: n })]);
    expect(report.tornDown).toEqual([]);
    expect(w.netnsExists(n)).toBe(true);
    // Another exec joins it and goes the chosen way; leaving does not remove it under the command.
    expect(await slowPath(n)).toBe(`slow ${HOST_SLOW_ADDR}`);
    expect(w.netnsExists(n)).toBe(true);

    expect(report.foundProcesses[0]!.pids).toEqual([st.holders[0]!.pid]);
    const shPid = st.holders[0]!.pid;
    await import('node:fs').then((fs) => fs.writeFileSync(stop, ''));
    await waitFor(() => !pidAlive(shPid), 'the command to end');
    const after = await gc();
    expect(after.tornDown).toEqual([n]);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('when the command ended too, the next exec of the NAME cleans up without the user noticing', async () => {
    const n = w.name('k2');
    const [ready, stop] = [marker(w, 'k2-ready'), marker(w, 'k2-stop')];
    const p = w.spawnNsroute(['exec', n, ...ROUTE, '--', ...holdScript(ready, stop)]);
    await waitForFile(ready);
    const holderPid = (await statusJson(w, n)).holders[0]!.pid;
    p.kill('SIGKILL');
    await import('node:fs').then((fs) => fs.writeFileSync(stop, ''));
    await waitFor(async () => (await statusJson(w, n)).status === 'stale', 'the namespace to be unused');
    expect(pidAlive(holderPid)).toBe(false);
    // The next exec sweeps the stale one away and makes a fresh one.
    expect(await slowPath(n)).toBe(`slow ${HOST_SLOW_ADDR}`);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('processes left behind', () => {
  it('a daemon started by the command keeps an ephemeral namespace up until it ends', async () => {
    const n = w.name('b1');
    const stop = marker(w, 'b1-stop');
    const r = await w.nsroute(['exec', n, ...ROUTE, '--', 'sh', '-c', `(while [ ! -e '${stop}' ]; do sleep 0.05; done) >/dev/null 2>&1 & echo $!`]);
    expectOk(r);
    expect(r.stderr).toMatch(new RegExp(`${n} stays up while processes started in it still run`));
    const daemon = Number(r.stdout.trim());
    const st = await statusJson(w, n);
    expect(st.up).toBe(true);
    expect(st.holders.map((h) => h.pid)).toContain(daemon);
    // down refuses while it runs.
    const down = await w.nsroute(['down', n]);
    expect(down.exitCode, show(down)).toBe(2);
    expect(down.stderr).toMatch(String(daemon));
    await import('node:fs').then((fs) => fs.writeFileSync(stop, ''));
    await waitFor(() => !pidAlive(daemon), 'the daemon to end');
    expect((await gc()).tornDown).toEqual([n]);
    expect(await w.snapshot()).toEqual(clean);
  });
});

// The run dir removed by hand, as a user would while nsroute's background watcher runs. The
// watcher started by `up` has taken its lock (RUN/watch.lock) by then: removing the dir while
// it starts races with its first write (rmdir: ENOTEMPTY), which a user never sees.
async function removeRunDir(...watched: string[]): Promise<void> {
  if (watched.length > 0) await waitFor(() => /"pid"/.test(readIfExists(`${w.runDir}/watch.lock`) ?? ''), 'the watcher');
  rmSync(w.runDir, { recursive: true, force: true, maxRetries: 5 });
}

describe('the run dir removed by hand while namespaces exist', () => {
  it('list says so, gc recovers both, and they are managed (and undone) exactly as before', async () => {
    const persistent = w.name('r1');
    const ephemeral = w.name('r2');
    expectOk(await w.nsroute(['up', persistent, ...ROUTE]));
    const [ready, stop] = [marker(w, 'r2-ready'), marker(w, 'r2-stop')];
    const holder = w.spawnNsroute(['exec', ephemeral, '--', ...holdScript(ready, stop)]);
    await waitForFile(ready);
    const before = await w.snapshot();
    const statusBefore = await statusJson(w, persistent);

    await removeRunDir(persistent);

    const list = await w.nsroute(['list', '--json']);
    expectOk(list);
    const rows = JSON.parse(list.stdout) as { name: string; status: string; needsGc: boolean; persistent: boolean }[];
    expect(rows).toEqual([
      expect.objectContaining({ name: persistent, status: 'untracked', needsGc: true, persistent: true }),
      expect.objectContaining({ name: ephemeral, status: 'untracked', needsGc: true, persistent: false }),
    ]);
    const text = await w.nsroute(['list']);
    expect(text.stderr).toMatch(/state under the run dir is missing.*nsroute gc/);

    const report = await gc();
    expect(report.recovered.sort()).toEqual([persistent, ephemeral].sort());
    expect(await w.snapshot()).toEqual(before);
    const recovered = await statusJson(w, persistent);
    const { holders: _h1, createdAt: _c1, dnsSource: _d1, ...same } = statusBefore;
    expect(recovered).toMatchObject({ ...same, status: 'up', needsGc: false });
    expect(recovered.dnsSource).toBe('recovered');
    expect(await slowPath(persistent)).toBe(`slow ${HOST_SLOW_ADDR}`);

    // The ephemeral one is held by its command; when it ends, its exec tears it down.
    expect((await statusJson(w, ephemeral)).holders).toEqual([expect.objectContaining({ kind: 'process' })]);
    await import('node:fs').then((fs) => fs.writeFileSync(stop, ''));
    expectOk(await holder.result);
    expect(w.netnsExists(ephemeral)).toBe(false);

    // The saved forwarding sysctls were outside the run dir: down restores them exactly.
    expectOk(await w.nsroute(['down', persistent]));
    expect(await w.snapshot()).toEqual(clean);
    expect(existsSync(`/etc/netns/${persistent}`)).toBe(false);
  });

  it('only the state file removed (journal left): gc recovers it rather than undoing it', async () => {
    const n = w.name('r5');
    expectOk(await w.nsroute(['up', n, ...ROUTE]));
    const up = await w.snapshot();
    rmSync(`${w.runDir}/ns/${n}/state.json`);
    expect((await gc()).recovered).toEqual([n]);
    expect(await w.snapshot()).toEqual(up);
    expect(await statusJson(w, n)).toMatchObject({ status: 'up', persistent: true });
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('an ephemeral NAME made persistent by `up` is recovered as persistent', async () => {
    const n = w.name('r6');
    const [ready, stop] = [marker(w, 'r6-ready'), marker(w, 'r6-stop')];
    const holder = w.spawnNsroute(['exec', n, ...ROUTE, '--', ...holdScript(ready, stop)]);
    await waitForFile(ready);
    const up = await w.nsroute(['up', n, '--json']);
    expect(JSON.parse(up.stdout)).toMatchObject({ created: false, persistent: true });
    await import('node:fs').then((fs) => fs.writeFileSync(stop, ''));
    expectOk(await holder.result);
    await removeRunDir(n);
    expect((await gc()).recovered).toEqual([n]);
    expect(await statusJson(w, n)).toMatchObject({ status: 'up', persistent: true, holders: [] });
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('an --ipv6 nat namespace is recovered with its IPv6 part, and down then undoes all of it', async () => {
    const n = w.name('r7');
    expectOk(await w.nsroute(['up', n, ...ROUTE, '--ipv6', 'nat', '--via6', SLOW_GW6, '--no-watch']));
    const up = await w.snapshot();
    await removeRunDir();
    expect((await gc()).recovered).toEqual([n]);
    expect(await w.snapshot()).toEqual(up);
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('without gc, the next command on the NAME recovers it first', async () => {
    const n = w.name('r4');
    expectOk(await w.nsroute(['up', n, ...ROUTE]));
    const up = await w.snapshot();
    await removeRunDir(n);
    expect(await slowPath(n)).toBe(`slow ${HOST_SLOW_ADDR}`);
    expect(await statusJson(w, n)).toMatchObject({ status: 'up', persistent: true, needsGc: false });
    expect(await w.snapshot()).toEqual(up);
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('gc removes leftovers whose namespace is gone too: uplink rule and table, nft table, files, sysctls', async () => {
    const n = w.name('r3');
    expectOk(await w.nsroute(['up', n, ...ROUTE]));
    await removeRunDir(n);
    expectOk(await w.inHost(['ip', 'netns', 'del', n])); // the veth goes with it
    const report = await gc();
    expect(report.removed.map((o) => o.object).sort()).toEqual(['files', 'nft-table', 'route-table', 'rule', 'rule', 'rule', 'rule', 'rule', 'sysctl', 'sysctl']);
    // The uplink's fwmark rule, and the four fail-closed rules (plan/guard.ts).
    expect(report.removed.filter((o) => o.object === 'rule').map((o) => o.name.replace(/from \S+/, 'from BLOCK')).sort()).toEqual([
      'fwmark 0x6e720001 lookup 7101',
      'pref 4201 fwmark 0x6e720000 goto 4203',
      'pref 4201 iif lo goto 4203',
      'pref 4202 from BLOCK unreachable',
      'pref 4203 nop',
    ]);
    expect(await w.snapshot()).toEqual(clean);
    expect(existsSync(`/etc/netns/${n}`)).toBe(false);
    expect(Object.values(await gc()).every((v) => v.length === 0)).toBe(true);
  });
});

describe('nsroute run from inside one of its own namespaces', () => {
  it('refuses with the fix, and changes nothing', async () => {
    const outer = w.name('i1');
    const inner = w.name('i2');
    const r = await w.nsroute(['exec', outer, '--as-root', '--', process.execPath, NSROUTE_JS, 'exec', inner, '--', 'true']);
    expect(r.exitCode, show(r)).toBe(125);
    expect(r.stderr).toMatch(new RegExp(`nsroute: nsroute is running inside its namespace ${outer}; run it from the host`));
    const down = await w.nsroute(['exec', outer, '--as-root', '--', process.execPath, NSROUTE_JS, 'gc']);
    expect(down.exitCode, show(down)).toBe(2);
    expect(w.netnsExists(inner)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });
});
