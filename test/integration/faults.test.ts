// Fault injection: nsroute is SIGKILLed right after each step of bringing a namespace up and
// of tearing it down (NSROUTE_TEST_CRASH, src/apply/crash.ts). After `nsroute gc` (or just the
// next command on that NAME) the fake host is exactly as before and the next exec works, also
// when another namespace shares the uplink, the nft table and the forwarding sysctls.
import { existsSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DNS_SERVER, HOST_SLOW_ADDR, sleep, SLOW_GW, type RunResult, type Snapshot, type World } from '../world/world.js';
import { expectOk, marker, PATH4, show, waitForFile, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const ROUTE = ['--via', SLOW_GW, '--dns', DNS_SERVER];
// netns-add, route-guard, veth-add, ns-config, netns-files, ip-forward, uplink-route, fw-holes, nft-member
const STEPS_WITH_UPLINK = 9;

function crashingExec(name: string, crash: string): Promise<RunResult> {
  return w.nsroute(['exec', name, ...ROUTE, '--', ...PATH4], { env: { NSROUTE_TEST_CRASH: crash } });
}

// A persistent namespace on the same uplink for the tests of one describe, up before them and
// down after (the host then exactly as clean); withNeighbour() is the snapshot with it up.
function useNeighbour(suffix: string): { neighbour: () => string; withNeighbour: () => Snapshot } {
  const neighbour = (): string => w.name(suffix);
  let snapshot: Snapshot;
  beforeAll(async () => {
    expectOk(await w.nsroute(['up', neighbour(), ...ROUTE]));
    snapshot = await w.snapshot();
  });
  afterAll(async () => {
    expectOk(await w.nsroute(['down', neighbour()]));
    expect(await w.snapshot()).toEqual(clean);
  });
  return { neighbour, withNeighbour: () => snapshot };
}

async function gcJson(): Promise<Record<string, unknown[]>> {
  const r = await w.nsroute(['gc', '--json']);
  expectOk(r);
  return JSON.parse(r.stdout) as Record<string, unknown[]>;
}

async function expectWorks(name: string): Promise<void> {
  const r = await w.nsroute(['exec', name, ...ROUTE, '--', ...PATH4]);
  expect(r.exitCode, show(r)).toBe(0);
  expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
}

// One test per step (not one loop over all of them), so that a slow step cannot fail the rest
// and each test's time is that of one crash and one gc.
const STEPS = Array.from({ length: STEPS_WITH_UPLINK }, (_, k) => k);

// Past the last step there is nothing to crash at: the exec runs normally. Together with the
// crashes at 0..STEPS_WITH_UPLINK-1 this says every step boundary was covered.
async function expectPastLastStep(phase: 'apply' | 'undo'): Promise<void> {
  const r = await crashingExec(w.name(`${phase[0]}end`), `${phase}:${STEPS_WITH_UPLINK}`);
  expect(r.signal, show(r)).toBeNull();
  expect(r.exitCode, show(r)).toBe(0);
  expect(await w.snapshot()).toEqual(clean);
}

describe('SIGKILL right after each step of bringing a namespace up', () => {
  it.each(STEPS)('after step %i: gc rolls it back, the host is exactly as before, and the next exec works', async (k) => {
    const name = w.name(`a${k}`);
    const r = await crashingExec(name, `apply:${k}`);
    expect(r.signal, show(r)).toBe('SIGKILL');
    expect(r.stdout, `crash after step ${k} must come before the command`).toBe('');
    const report = await gcJson();
    expect(report.rolledBack, `step ${k}`).toEqual([name]);
    expect(await w.snapshot(), `after gc, crash after step ${k}`).toEqual(clean);
    expect(w.netnsExists(name)).toBe(false);
    expect(existsSync(`/etc/netns/${name}`)).toBe(false);
    await expectWorks(name);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a crash point past the last step is never reached', async () => {
    await expectPastLastStep('apply');
  });

  it.each([0, 3, 6])('without gc, the next command on the NAME cleans up first (crash after step %i)', async (k) => {
    const name = w.name(`n${k}`);
    const r = await crashingExec(name, `apply:${k}`);
    expect(r.signal, show(r)).toBe('SIGKILL');
    await expectWorks(name);
    expect(await w.snapshot(), `crash after step ${k}`).toEqual(clean);
  });

  describe('with a neighbour on the same uplink', () => {
    const { neighbour, withNeighbour } = useNeighbour('nb1');

    it.each(STEPS)('after step %i: gc undoes only the crashed one', async (k) => {
      const name = w.name(`m${k}`);
      const r = await crashingExec(name, `apply:${k}`);
      expect(r.signal, show(r)).toBe('SIGKILL');
      expect((await gcJson()).rolledBack).toEqual([name]);
      expect(await w.snapshot(), `crash after step ${k}`).toEqual(withNeighbour());
      await expectWorks(neighbour());
    });
  });
});

describe('SIGKILL right after each step of tearing a namespace down', () => {
  it.each(STEPS)('after undoing step %i: gc finishes the teardown, the host is exactly as before, and the next exec works', async (k) => {
    const name = w.name(`u${k}`);
    const r = await crashingExec(name, `undo:${k}`);
    expect(r.signal, show(r)).toBe('SIGKILL');
    // The command ran to the end before teardown started.
    expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
    const report = await gcJson();
    expect(report.finished, `undo of step ${k}`).toEqual([name]);
    expect(await w.snapshot(), `after gc, crash after undoing step ${k}`).toEqual(clean);
    expect(w.netnsExists(name)).toBe(false);
    await expectWorks(name);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a crash point past the last step is never reached', async () => {
    await expectPastLastStep('undo');
  });

  describe('with a neighbour on the same uplink', () => {
    const { neighbour, withNeighbour } = useNeighbour('nb2');

    it.each(STEPS)('after undoing step %i: the neighbour keeps working', async (k) => {
      const name = w.name(`v${k}`);
      const r = await crashingExec(name, `undo:${k}`);
      expect(r.signal, show(r)).toBe('SIGKILL');
      expect((await gcJson()).finished).toEqual([name]);
      expect(await w.snapshot(), `crash after undoing step ${k}`).toEqual(withNeighbour());
      await expectWorks(neighbour());
    });
  });

  it('SIGTERM and SIGINT arriving during teardown do not interrupt it', async () => {
    const name = w.name('t1');
    const pause = marker(w, 't1-pause');
    const p = w.spawnNsroute(['exec', name, ...ROUTE, '--', 'sh', '-c', 'exit 7'], { env: { NSROUTE_TEST_PAUSE: `undo:3:${pause}` } });
    await waitForFile(`${pause}.reached`);
    p.kill('SIGTERM');
    p.kill('SIGINT');
    p.kill('SIGHUP');
    await sleep(100);
    writeFileSync(pause, '');
    const r = await p.result;
    expect(r.exitCode, show(r)).toBe(7); // the command's own status
    expect(w.netnsExists(name)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a crashed `down` is finished by the next `down`', async () => {
    const name = w.name('d1');
    expectOk(await w.nsroute(['up', name, ...ROUTE]));
    const r = await w.nsroute(['down', name], { env: { NSROUTE_TEST_CRASH: 'undo:3' } });
    expect(r.signal, show(r)).toBe('SIGKILL');
    const list = JSON.parse((await w.nsroute(['list', '--json'])).stdout) as { name: string; status: string; needsGc: boolean }[];
    expect(list).toEqual([expect.objectContaining({ name, status: 'interrupted', needsGc: true })]);
    const again = await w.nsroute(['down', name, '--json']);
    expectOk(again);
    expect(await w.snapshot()).toEqual(clean);
  });
});
