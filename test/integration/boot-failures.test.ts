// Issue 14, without systemd: the failures a real boot found, reproduced in the test world.
// (The same paths under a real systemd, with the units: nspawn.test.ts.)
// 1. An uplink down or missing when a persistent NAME comes up: `up` succeeds with the kill
//    switch closed (nothing leaves, not even by another path) and the watcher opens it when
//    the uplink appears; `exec`, which would create NAME for one command, fails at once.
// 4. Root without CAP_NET_ADMIN: one line naming what is missing and the fix, nothing changed.
import { describe, expect, it } from 'vitest';
import { HOST_SLOW_ADDR, NSROUTE_JS, SLOW_DEV, SLOW_GW, DNS_SERVER, waitFor, type Snapshot, type World } from '../world/world.js';
import { delta, expectOk, expectUserError, NOTHING, PATH4, show, statusJson, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const SLOW = `slow ${HOST_SLOW_ADDR}`;

async function pathOf(name: string) {
  return w.nsroute(['exec', name, '--', ...PATH4]);
}

// Traffic from NAME is refused at once by the kernel and reaches neither gateway.
async function expectBlocked(name: string): Promise<void> {
  const [f0, s0] = [await w.gatewayPackets('fast'), await w.gatewayPackets('slow')];
  const r = await pathOf(name);
  expect(r.exitCode, show(r)).not.toBe(0);
  // Refused at once: the uplink table's unreachable route answers "No route to host".
  expect(r.stderr, show(r)).toMatch(/No route to host|Network is unreachable/);
  expect(delta(f0, await w.gatewayPackets('fast'))).toEqual(NOTHING);
  expect(delta(s0, await w.gatewayPackets('slow'))).toEqual(NOTHING);
}

async function waitForSlow(name: string): Promise<void> {
  await waitFor(async () => (await pathOf(name)).stdout.trim() === SLOW, `${name}'s traffic to flow via the slow uplink`);
}

describe('an uplink that is down when a persistent NAME comes up', () => {
  it('up succeeds with the kill switch closed, one warning line; the watcher opens it when the link comes up', async () => {
    const n = w.name('d1');
    w.writeProfile(n, `via = "${SLOW_GW}"\ndns = ["${DNS_SERVER}"]\n`);
    await w.setUplink('slow', false);
    let linkDown = true;
    try {
      const r = await w.nsroute(['up', n, '--require-profile', '--json']);
      expectOk(r);
      expect(JSON.parse(r.stdout)).toMatchObject({ name: n, up: true, created: true, dev: SLOW_DEV, waiting: { dev: SLOW_DEV, reason: 'down' } });
      expect(r.stderr.trimEnd().split('\n'), show(r)).toEqual([
        `nsroute: ${n} is up with its kill switch closed: uplink ${SLOW_DEV} is down, so its traffic is blocked; its watcher opens it when ${SLOW_DEV} is up`,
      ]);
      await expectBlocked(n);
      await w.setUplink('slow', true);
      linkDown = false;
      await waitForSlow(n);
      expect((await statusJson(w, n)).gateway).toBe(SLOW_GW);
    } finally {
      if (linkDown) await w.setUplink('slow', true);
      await w.nsroute(['down', n, '--force']);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('an uplink that does not exist yet (dev in the profile): the unit\'s up waits for it, a shell\'s up refuses it', async () => {
    const n = w.name('d2');
    const gone = 'upz';
    w.writeProfile(n, `via = "${SLOW_GW}"\ndev = "${SLOW_DEV}"\n`);
    // The slow uplink "unplugged": renamed away (down first: a name changes only on a down link).
    await w.setUplink('slow', false);
    expectOk(await w.inHost(['ip', 'link', 'set', SLOW_DEV, 'name', gone]));
    let renamed = true;
    try {
      // From a shell a missing interface is likelier a typo: refused, nothing changed.
      const typo = await w.nsroute(['up', n]);
      expectUserError(typo, 2);
      expect(typo.stderr).toContain(`interface ${SLOW_DEV} does not exist`);
      expect(w.netnsExists(n)).toBe(false);
      // The unit's up (at boot) waits for it.
      const r = await w.nsroute(['up', n, '--require-profile', '--json']);
      expectOk(r);
      expect(JSON.parse(r.stdout)).toMatchObject({ waiting: { dev: SLOW_DEV, reason: 'missing' } });
      expect(r.stderr, show(r)).toContain(`uplink ${SLOW_DEV} does not exist yet`);
      await expectBlocked(n);
      expectOk(await w.inHost(['ip', 'link', 'set', gone, 'name', SLOW_DEV]));
      renamed = false;
      await w.setUplink('slow', true);
      await waitForSlow(n);
    } finally {
      if (renamed) await w.inHost(['ip', 'link', 'set', gone, 'name', SLOW_DEV]);
      await w.setUplink('slow', true);
      await w.nsroute(['down', n, '--force']);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('exec, which would create NAME for one command, fails at once and changes nothing', async () => {
    const n = w.name('d3');
    w.writeProfile(n, `via = "${SLOW_GW}"\n`);
    await w.setUplink('slow', false);
    try {
      const before = await w.snapshot();
      const r = await pathOf(n);
      expect(r.exitCode, show(r)).toBe(125);
      expect(r.stderr.trimEnd(), show(r)).toBe(`nsroute: interface ${SLOW_DEV} is down; bring it up first (ip link set ${SLOW_DEV} up)`);
      expect(w.netnsExists(n)).toBe(false);
      expect(await w.snapshot()).toEqual(before);
    } finally {
      await w.setUplink('slow', true);
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('root without CAP_NET_ADMIN', () => {
  // setpriv: root with CAP_NET_ADMIN dropped from the bounding set, as in a container or a
  // unit with CapabilityBoundingSet=.
  const noNetAdmin = (args: string[]) => w.inHost(['setpriv', '--bounding-set=-net_admin', '--inh-caps=-all', process.execPath, NSROUTE_JS, ...args]);

  it('up, exec and down say so in one line with the fix, and change nothing', async () => {
    const n = w.name('c1');
    w.writeProfile(n, `via = "${SLOW_GW}"\n`);
    for (const [args, code] of [
      [['up', n], 2],
      [['exec', n, '--', 'true'], 125],
      [['down', n], 2],
      [['gc'], 2],
    ] as const) {
      const r = await noNetAdmin([...args]);
      if (code === 2) expectUserError(r, 2);
      else expect(r.exitCode, show(r)).toBe(code);
      expect(r.stderr.trimEnd().split('\n'), show(r)).toHaveLength(1);
      expect(r.stderr, show(r)).toMatch(/^nsroute: nsroute runs as root but without CAP_NET_ADMIN .*; give it to nsroute: .*CapabilityBoundingSet=/);
    }
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });
});
