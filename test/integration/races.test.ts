// Races: many execs of one cold NAME create it exactly once; a long exec keeps NAME while short
// ones come and go; different NAMEs at once get distinct subnets; `down` racing `exec`; `up`
// racing the teardown of an ephemeral namespace of the same NAME. Every scenario must leave the
// fake host exactly as it found it.
import { existsSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CALL_TIMEOUT_MS,
  HOST_FAST_ADDR,
  HOST_SLOW_ADDR,
  SLOW_GW,
  waitFor,
  type RunResult,
  type Snapshot,
  type Spawned,
  type World,
} from '../world/world.js';
import { expectOk, holdScript, marker, PATH4, show, statusJson, waitForFile, type StatusJson, useWorld } from '../world/helpers.js';
import { nsrouteProcesses } from '../world/procs.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const SLOW = `slow ${HOST_SLOW_ADDR}`;
const FAST = `fast ${HOST_FAST_ADDR}`;
// Derived from the work: N execs of one NAME take the host lock one after the other, so the
// last one may wait for all the others. PER_EXEC_MS is one exec's turn on a machine 5-10x
// slower than a quiet one (CI shares machines); a timeout here is a hang, not slowness.
const PER_EXEC_MS = 6_000;
const execsTimeout = (n: number): number => CALL_TIMEOUT_MS + n * PER_EXEC_MS;
// Every spawn of this file gets the largest scenario's (50 execs) bound; the 50-exec test's
// own timeout is above it, the others have vitest's (vitest.config.ts).
const SPAWN_TIMEOUT = execsTimeout(50);

// PATH4 with a longer wait after stdin's EOF (`-t`, default 0.5 s): socat stops waiting for the
// server's answer that long after our (empty) stdin ends, and with 50 connections at once on
// two cores the forking server may need longer than that to answer.
const PATH4_SH = [PATH4[0], '-t3', ...PATH4.slice(1)].map((a) => `'${a}'`).join(' ');
const IFLINK_SH = 'cat /sys/class/net/eth0/iflink';

// Prints the host-side veth's ifindex and the path server's answer, then (optionally) touches
// `started` and waits for `go`.
function probeScript(started?: string, go?: string): string[] {
  const wait = started && go ? `; touch '${started}'; while [ ! -e '${go}' ]; do sleep 0.05; done` : '';
  return ['sh', '-c', `${IFLINK_SH}; ${PATH4_SH}${wait}`];
}

// "<iflink>\n<path answer>\n" -> both.
function parseProbe(r: RunResult): { iflink: string; path: string } {
  const lines = r.stdout.trim().split('\n');
  expect(lines, show(r)).toHaveLength(2);
  expect(lines[0], show(r)).toMatch(/^\d+$/);
  return { iflink: lines[0]!, path: lines[1]!.trim() };
}

async function expectGone(name: string): Promise<void> {
  expect(w.netnsExists(name)).toBe(false);
  expect(existsSync(`/etc/netns/${name}`)).toBe(false);
  const st = await w.nsroute(['status', name, '--json']);
  expect(st.exitCode, show(st)).toBe(3);
  expect(JSON.parse(st.stdout)).toEqual({ name, up: false });
}

async function expectClean(): Promise<void> {
  expect(await w.snapshot()).toEqual(clean);
}

// Until every `started` marker exists; fails at once if one of the execs ends before that
// (they all wait for a go file, so ending early is a failure, e.g. exit 125 from nsroute).
async function waitAllStarted(started: readonly string[], execs: readonly Spawned[], timeoutMs: number): Promise<void> {
  let early: Spawned | undefined;
  await waitFor(
    () => {
      early = execs.find((e) => e.child.exitCode !== null || e.child.signalCode !== null);
      return early !== undefined || started.every((s) => existsSync(s));
    },
    `${started.length} execs to start`,
    timeoutMs,
    100,
  );
  if (early) {
    const r = await early.result;
    throw new Error(`an exec ended before go:\n${show(r)}`);
  }
}

function killAll(handles: readonly Spawned[]): void {
  for (const h of handles) h.kill('SIGKILL');
}

describe('many execs of one NAME', () => {
  it('50 concurrent execs of a cold NAME create it once, share it, and the last one out removes it', { timeout: 2 * execsTimeout(50) }, async () => {
    const n = w.name('r1');
    const go = marker(w, 'r1-go');
    const started = Array.from({ length: 50 }, (_, i) => marker(w, `r1-started-${i}`));
    const execs = started.map((s) => w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...probeScript(s, go)], { timeoutMs: SPAWN_TIMEOUT }));
    try {
      await waitAllStarted(started, execs, execsTimeout(started.length));
      const st = await statusJson(w, n);
      expect(st).toMatchObject({ name: n, up: true, persistent: false, gateway: SLOW_GW });
      expect(st.holders).toHaveLength(50);
      expect(new Set(st.holders.map((h) => h.pid))).toEqual(new Set(execs.map((e) => e.pid)));

      writeFileSync(go, '');
      const results = await Promise.all(execs.map((e) => e.result));
      for (const r of results) expectOk(r);
      const probes = results.map(parseProbe);
      expect(new Set(probes.map((p) => p.iflink)).size, 'more than one namespace instance served the execs').toBe(1);
      expect(probes.map((p) => p.path)).toEqual(Array(50).fill(SLOW));

      await expectGone(n);
      await expectClean();
    } finally {
      writeFileSync(go, '');
      killAll(execs);
    }
  });

  it('a long exec keeps NAME while short execs come and go', async () => {
    const n = w.name('r2');
    const [ready, stop] = [marker(w, 'r2-ready'), marker(w, 'r2-stop')];
    const longCmd = ['sh', '-c', `${IFLINK_SH}; touch '${ready}'; while [ ! -e '${stop}' ]; do sleep 0.05; done`];
    const long = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...longCmd], { timeoutMs: SPAWN_TIMEOUT });
    try {
      await waitForFile(ready);
      const iflink = long.stdout().trim();
      expect(iflink).toMatch(/^\d+$/);

      const expectOnlyLongHolds = async () => {
        const st = await statusJson(w, n);
        expect(st).toMatchObject({ name: n, up: true, persistent: false, gateway: SLOW_GW });
        expect(st.holders.map((h) => ({ pid: h.pid, command: h.command }))).toEqual([{ pid: long.pid, command: longCmd }]);
      };
      await expectOnlyLongHolds();

      for (let i = 0; i < 10; i++) {
        const r = await w.nsroute(['exec', n, '--via', SLOW_GW, '--', ...probeScript()]);
        expectOk(r);
        expect(parseProbe(r), `sequential short exec #${i}`).toEqual({ iflink, path: SLOW });
        await expectOnlyLongHolds();
      }

      // A few at once; half of them join without --via (they take NAME as it is).
      const parallel = await Promise.all(
        Array.from({ length: 6 }, (_, i) => w.nsroute(['exec', n, ...(i % 2 ? [] : ['--via', SLOW_GW]), '--', ...probeScript()])),
      );
      for (const r of parallel) {
        expectOk(r);
        expect(parseProbe(r)).toEqual({ iflink, path: SLOW });
      }
      await expectOnlyLongHolds();

      writeFileSync(stop, '');
      expectOk(await long.result);
      await expectGone(n);
      await expectClean();
    } finally {
      writeFileSync(stop, '');
      long.kill('SIGKILL');
    }
  });
});

describe('different NAMEs at once', () => {
  it('12 concurrent execs of 12 NAMEs get their own path and pairwise distinct subnets', async () => {
    const go = marker(w, 'r3-go');
    const jobs = Array.from({ length: 12 }, (_, i) => {
      const name = w.name(`r3-${i}`);
      const slow = i % 2 === 0;
      const started = marker(w, `r3-started-${i}`);
      const h = w.spawnNsroute(['exec', name, ...(slow ? ['--via', SLOW_GW] : []), '--', ...probeScript(started, go)], {
        timeoutMs: SPAWN_TIMEOUT,
      });
      return { name, slow, started, h };
    });
    try {
      await waitAllStarted(
        jobs.map((j) => j.started),
        jobs.map((j) => j.h),
        execsTimeout(jobs.length),
      );
      const states: StatusJson[] = [];
      for (const j of jobs) {
        const st = await statusJson(w, j.name);
        expect(st).toMatchObject({ name: j.name, up: true, persistent: false, gateway: j.slow ? SLOW_GW : null });
        expect(st.holders.map((h) => h.pid)).toEqual([j.h.pid]);
        states.push(st);
      }
      const subnets = states.map((s) => s.subnet);
      expect(new Set(subnets).size, subnets.join(' ')).toBe(12);
      expect(new Set(states.map((s) => s.hostInterface)).size).toBe(12);

      writeFileSync(go, '');
      const results = await Promise.all(jobs.map((j) => j.h.result));
      results.forEach((r, i) => {
        expectOk(r);
        expect(parseProbe(r).path, jobs[i]!.name).toBe(jobs[i]!.slow ? SLOW : FAST);
      });
      for (const j of jobs) await expectGone(j.name);
      await expectClean();
    } finally {
      writeFileSync(go, '');
      killAll(jobs.map((j) => j.h));
    }
  });
});

describe('down racing exec', () => {
  it('down --force while 10 execs start: each exec succeeds on the slow path or fails cleanly, nothing is left', async () => {
    const n = w.name('r4');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    // A short pause after the answer widens the window in which down --force finds the exec
    // holding NAME (and has to end it) instead of before or after it.
    const cmd = ['sh', '-c', `${PATH4_SH}; sleep 0.3`];
    const execs = Array.from({ length: 10 }, () => w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...cmd], { timeoutMs: SPAWN_TIMEOUT }));
    const down = w.spawnNsroute(['down', n, '--force'], { timeoutMs: SPAWN_TIMEOUT });
    try {
      const d = await down.result;
      expectOk(d);
      const results = await Promise.all(execs.map((e) => e.result));
      const outcomes: string[] = [];
      for (const r of results) {
        // Not SIGKILLed by our timeout (a hang), and exited on its own.
        expect(r.signal, show(r)).toBeNull();
        expect(r.exitCode, show(r)).not.toBeNull();
        if (r.exitCode === 0) {
          expect(r.stdout.trim(), show(r)).toBe(SLOW);
        } else {
          // Told to stop (143), or its network vanished under it: a non-zero code, and no
          // answer from a wrong path.
          expect(['', SLOW], show(r)).toContain(r.stdout.trim());
          if (r.exitCode !== 143) expect(r.stderr.trim(), show(r)).not.toBe('');
        }
        outcomes.push(String(r.exitCode));
      }
      // All execs have ended, so an ephemeral NAME re-created after the down is gone too.
      const gc = await w.nsroute(['gc', '--json']);
      expectOk(gc);
      expect(() => JSON.parse(gc.stdout), show(gc)).not.toThrow();
      await expectGone(n);
      await expectClean();
      // For the log: how the race came out this time.
      console.log(`r4 exec exit codes: ${outcomes.join(' ')}`);
    } finally {
      killAll([...execs, down]);
    }
  });

  // What down --force does to an exec at its worst moment, made certain: SIGTERM after SIGTERM
  // from the moment its command runs until it exits. The first reaches the command (which ends
  // with 143); the rest land while the exec leaves NAME and while Node exits. The exec must
  // answer none of them by dying or by leaving its teardown half-done.
  it.each([
    ['cold (NAME created for it)', false],
    ['hot (into an up NAME)', true],
  ])('an exec sent SIGTERM nonstop once its command runs, %s: exits 143 on its own and leaves nothing', async (_what, persistent) => {
    const n = w.name(persistent ? 'r4h' : 'r4c');
    const ready = marker(w, `${n}-ready`);
    if (persistent) expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    const ex = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', 'sh', '-c', `touch '${ready}'; exec sleep 60`], { timeoutMs: SPAWN_TIMEOUT });
    let storm: NodeJS.Timeout | undefined;
    try {
      await waitFor(() => existsSync(ready) || ex.child.exitCode !== null || ex.child.signalCode !== null, `${n}'s command to start`, CALL_TIMEOUT_MS);
      let sent = 0;
      // Only while our own child has not been reaped (Node sets exitCode when it reaps it, in
      // the same turn of the loop), so the pid is still the exec's.
      storm = setInterval(() => {
        if (ex.child.exitCode !== null || ex.child.signalCode !== null) return;
        ex.child.kill('SIGTERM');
        sent++;
      }, 2);
      const r = await ex.result;
      clearInterval(storm);
      expect(sent, show(r)).toBeGreaterThan(0);
      expect(r.signal, show(r)).toBeNull();
      expect(r.exitCode, show(r)).toBe(143);
      expect(r.stderr, show(r)).toBe('');
      if (persistent) {
        const st = await statusJson(w, n);
        expect(st.holders, show(r)).toEqual([]);
        expectOk(await w.nsroute(['down', n]));
      }
      await expectGone(n);
      await expectClean();
    } finally {
      clearInterval(storm);
      ex.kill('SIGKILL');
    }
  });

  it('down without --force refuses while an exec holds NAME, naming the holder, and NAME keeps working', async () => {
    const n = w.name('r5');
    const [ready, stop] = [marker(w, 'r5-ready'), marker(w, 'r5-stop')];
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    const hold = holdScript(ready, stop);
    const inside = w.spawnNsroute(['exec', n, '--', ...hold], { timeoutMs: SPAWN_TIMEOUT });
    try {
      await waitForFile(ready);
      const refused = await w.nsroute(['down', n]);
      expect(refused.exitCode, show(refused)).toBe(2);
      expect(refused.stderr, show(refused)).toMatch(/^nsroute: /);
      expect(refused.stderr, show(refused)).toContain(String(inside.pid));
      expect(refused.stderr, show(refused)).toContain('sh -c');
      expect(inside.child.exitCode).toBeNull();

      expect(w.netnsExists(n)).toBe(true);
      const st = await statusJson(w, n);
      expect(st).toMatchObject({ up: true, persistent: true, gateway: SLOW_GW });
      expect(st.holders.map((h) => h.pid)).toEqual([inside.pid]);
      const r = await w.nsroute(['exec', n, '--', ...PATH4]);
      expectOk(r);
      expect(r.stdout.trim()).toBe(SLOW);

      writeFileSync(stop, '');
      expectOk(await inside.result);
      expect(w.netnsExists(n)).toBe(true); // persistent: the exec leaving does not remove it
      expectOk(await w.nsroute(['down', n]));
      await expectGone(n);
      await expectClean();
    } finally {
      writeFileSync(stop, '');
      inside.kill('SIGKILL');
    }
  });
});

describe('up racing an ephemeral teardown', () => {
  it('up while an exec of the same NAME comes and goes always ends with NAME up and persistent', async () => {
    const n = w.name('r6');
    const created: boolean[] = [];
    for (let i = 0; i < 10; i++) {
      const exec = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', 'true'], { timeoutMs: SPAWN_TIMEOUT });
      const up = w.spawnNsroute(['up', n, '--via', SLOW_GW, '--json'], { timeoutMs: SPAWN_TIMEOUT });
      try {
        const [re, ru] = await Promise.all([exec.result, up.result]);
        expectOk(re);
        expectOk(ru);
        created.push((JSON.parse(ru.stdout) as { created: boolean }).created);

        const st = await statusJson(w, n);
        expect(st, `round ${i}`).toMatchObject({ name: n, up: true, persistent: true, gateway: SLOW_GW, holders: [] });
        const r = await w.nsroute(['exec', n, '--', ...PATH4]);
        expectOk(r);
        expect(r.stdout.trim(), `round ${i}`).toBe(SLOW);
        expect(w.netnsExists(n)).toBe(true);

        expectOk(await w.nsroute(['down', n]));
        await expectGone(n);
      } finally {
        killAll([exec, up]);
      }
    }
    await expectClean();
    console.log(`r6 up created the namespace in ${created.filter(Boolean).length}/10 rounds`);
  });
});

describe('a reader without the lock while a state file is being replaced', () => {
  // `up` paused inside its last state write: the run dir's generation has moved on, the file
  // still says "creating". An exec of the same NAME reads every state before it waits for the
  // lock (its id bases). What it read then is half of a change: kept as a cache, it made the
  // exec take the namespace for a crashed create and tear `up`'s namespace down (CI saw
  // status say "not up" after both had succeeded).
  it('an exec that read the states during up\'s write joins the NAME up made, which stays up and persistent', async () => {
    const n = w.name('r7');
    const pause = marker(w, 'r7-pause');
    const up = w.spawnNsroute(['up', n, '--via', SLOW_GW, '--json'], { env: { NSROUTE_TEST_PAUSE: `state:1:${pause}` }, timeoutMs: SPAWN_TIMEOUT });
    let exec: Spawned | undefined;
    try {
      await waitForFile(`${pause}.reached`, 60_000);
      exec = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...PATH4], { timeoutMs: SPAWN_TIMEOUT });
      // The exec has read the states when it waits for the lock (its flock runs).
      await waitFor(() => nsrouteProcesses(w.runDir).some((p) => p.argv[0]?.endsWith('flock') && p.argv.includes('-x')), 'the exec to wait for the lock', 60_000);
      writeFileSync(pause, '');
      const ru = await up.result;
      expectOk(ru);
      expect((JSON.parse(ru.stdout) as { created: boolean }).created).toBe(true);
      const re = await exec.result;
      expectOk(re);
      expect(re.stdout.trim()).toBe(SLOW);
      expect(await statusJson(w, n)).toMatchObject({ name: n, up: true, persistent: true, gateway: SLOW_GW, holders: [] });
      expectOk(await w.nsroute(['down', n]));
      await expectGone(n);
    } finally {
      writeFileSync(pause, '');
      killAll([up, ...(exec ? [exec] : [])]);
    }
    await expectClean();
  });
});
