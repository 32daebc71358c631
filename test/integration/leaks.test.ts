// No leaks on real hosts: a namespace's traffic leaves by its own uplink or not at all. When
// that uplink goes away, nothing falls back to the host's default route (kill switch); IPv6
// stays shut unless asked for, and then leaves by the same uplink; DNS reaches the namespace's
// servers by the namespace's route. Each test makes a real leak attempt and checks both what
// the command saw and what the gateways received (gatewayPackets: nft counters on their lan0).
import { describe, expect, it } from 'vitest';
import {
  DNS_SERVER,
  expandV6,
  FAST_ANSWER,
  FAST_GW,
  HOST_FAST_ADDR,
  HOST_FAST_ADDR6,
  HOST_SLOW_ADDR,
  HOST_SLOW_ADDR6,
  SLOW_ANSWER,
  SLOW_DEV,
  SLOW_GW,
  SLOW_GW6,
  sleep,
  WAIT_TIMEOUT_MS,
  type RunResult,
  type Snapshot,
  type World,
} from '../world/world.js';
import { ahostsAddresses, expectOk, PATH4, PATH6, probeName, show, statusJson, useWorld, delta, NOTHING } from '../world/helpers.js';

// The path probes with a bounded connect: a SYN that gets no answer (a leak the gateway drops)
// fails after 4 s instead of the kernel's two minutes, so nsroute exec ends by itself.

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const SLOW4 = `slow ${HOST_SLOW_ADDR}`;
const FAST4 = `fast ${HOST_FAST_ADDR}`;
const SLOW6 = `slow6 [${expandV6(HOST_SLOW_ADDR6)}]`;
const FAST6 = `fast6 [${expandV6(HOST_FAST_ADDR6)}]`;
// glibc reads RES_OPTIONS after resolv.conf: one short try per server, so a lookup that cannot
// work fails in about a second instead of nsroute's timeout:2 attempts:2.
const QUICK_DNS = ['env', 'RES_OPTIONS=timeout:1 attempts:1'];


// A failed attempt: non-zero exit, not killed by our timeout, no "fast" answer on any line.
function expectFailedNotFast(r: RunResult): void {
  expect(r.signal, show(r)).toBeNull();
  expect(r.exitCode, show(r)).not.toBe(0);
  expect(r.stdout, show(r)).not.toMatch(/^fast/m);
}

// A program already running inside NAME (not a new nsroute exec, which might repair things
// first): the kernel's view of the namespace's route.
function inside(name: string, argv: readonly string[]): Promise<RunResult> {
  return w.inNetns(name, argv, { timeoutMs: 10_000 });
}

describe('kill switch: the uplink goes away', () => {
  it('slow link down: nothing reaches the fast side, v4 or DNS; link up: the route comes back without restarting NAME', async () => {
    const n = w.name('ks1');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', SLOW_GW]));
    let linkDown = false;
    try {
      const first = await w.nsroute(['exec', n, '--', ...PATH4]);
      expectOk(first);
      expect(first.stdout.trim()).toBe(SLOW4);

      const fastBefore = await w.gatewayPackets('fast');
      await w.setUplink('slow', false);
      linkDown = true;
      const probe = probeName('ks-down');
      for (const r of [
        await inside(n, PATH4),
        await w.nsroute(['exec', n, '--', ...PATH4], { timeoutMs: 15_000 }),
        await w.nsroute(['exec', n, '--', ...QUICK_DNS, 'getent', 'ahostsv4', probe], { timeoutMs: 15_000 }),
      ]) {
        expectFailedNotFast(r);
      }
      expect(delta(fastBefore, await w.gatewayPackets('fast'))).toEqual(NOTHING);
      expect(w.dnsQueries('fast', probe)).toBe(0);

      await w.setUplink('slow', true);
      linkDown = false;
      // Expected: the uplink's route comes back by itself (nsroute may need a moment; a loaded
      // machine a longer one: this bounds a hang, it does not time nsroute).
      const deadline = Date.now() + WAIT_TIMEOUT_MS;
      let last: RunResult;
      for (;;) {
        last = await w.nsroute(['exec', n, '--', ...PATH4], { timeoutMs: 10_000 });
        expect(last.stdout, show(last)).not.toMatch(/^fast/m);
        if (last.exitCode === 0 && last.stdout.trim() === SLOW4) break;
        if (Date.now() > deadline) break;
        await sleep(200);
      }
      expect(last.stdout.trim(), `the slow route did not come back within ${WAIT_TIMEOUT_MS / 1000} s: ${show(last)}`).toBe(SLOW4);
      expect((await inside(n, PATH4)).stdout.trim()).toBe(SLOW4);
      expect(delta(fastBefore, await w.gatewayPackets('fast'))).toEqual(NOTHING);
    } finally {
      if (linkDown) await w.setUplink('slow', true);
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it("the uplink's route deleted from its table: traffic fails, never fast", async () => {
    const n = w.name('ks2');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', SLOW_GW]));
    try {
      const { table } = await statusJson(w, n);
      expect(table, 'status --json has the uplink table').toEqual(expect.any(Number));
      const del = await w.inHost(['ip', 'route', 'del', 'default', 'via', SLOW_GW, 'dev', SLOW_DEV, 'table', String(table)]);
      expectOk(del);
      const fastBefore = await w.gatewayPackets('fast');
      // nsroute may put the route back by itself (at once, or on the next exec): then the
      // traffic goes slow again. Until then it fails. It never goes fast.
      for (const r of [await inside(n, PATH4), await w.nsroute(['exec', n, '--', ...PATH4], { timeoutMs: 15_000 })]) {
        expect(r.signal, show(r)).toBeNull();
        expect(r.stdout, show(r)).not.toMatch(/^fast/m);
        if (r.exitCode === 0) expect(r.stdout.trim()).toBe(SLOW4);
      }
      expect(delta(fastBefore, await w.gatewayPackets('fast'))).toEqual(NOTHING);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('with --ipv6 nat, slow link down: IPv6 does not fall back to the fast uplink either', async () => {
    const n = w.name('ks3');
    // --via6 given: this is about the kill switch, not about finding the IPv6 router.
    expectOk(await w.nsroute(['up', n, '--ipv6', 'nat', '--via', SLOW_GW, '--via6', SLOW_GW6]));
    let linkDown = false;
    try {
      const first = await w.nsroute(['exec', n, '--', ...PATH6]);
      expectOk(first);
      expect(first.stdout.trim()).toBe(SLOW6);
      const fastBefore = await w.gatewayPackets('fast');
      await w.setUplink('slow', false);
      linkDown = true;
      expectFailedNotFast(await inside(n, PATH6));
      expectFailedNotFast(await inside(n, PATH4));
      expect(delta(fastBefore, await w.gatewayPackets('fast'))).toEqual(NOTHING);
    } finally {
      if (linkDown) await w.setUplink('slow', true);
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});

// Without --ipv6 the namespace must have no IPv6 way out at all, fast.
async function expectNoIpv6(world: World): Promise<void> {
  expect(await world.hostPath(6)).toBe(FAST6);
  for (const via of [[], ['--via', SLOW_GW]]) {
    const before = { fast: await world.gatewayPackets('fast'), slow: await world.gatewayPackets('slow') };
    const r = await world.nsroute(['exec', world.name('v6off'), ...via, '--', ...PATH6], { timeoutMs: 10_000 });
    expect(r.signal, `timed out: ${show(r)}`).toBeNull();
    expect(r.exitCode, show(r)).not.toBe(0);
    // "Fast" as a property: the kernel refuses at once (no route), nothing waits for an answer.
    expect(r.stderr, show(r)).toMatch(/connect\(.*\): Network is unreachable/);
    expect(r.exitCode, show(r)).toBeLessThan(125); // the command failed, not nsroute
    expect(r.stdout, show(r)).toBe('');
    expect(delta(before.fast, await world.gatewayPackets('fast')).path6).toBe(0);
    expect(delta(before.slow, await world.gatewayPackets('slow')).path6).toBe(0);
  }
}

describe('IPv6 off (the default)', () => {
  it('the host reaches the IPv6 server; a namespace, default or --via, fails at once', async () => {
    await expectNoIpv6(w);
    expect(await w.snapshot()).toEqual(clean);
  });

  describe('on a host that forwards IPv6', () => {
    let w6: World;
    let clean6: Snapshot;
    useWorld((world, snapshot) => ((w6 = world), (clean6 = snapshot)), { ipv6Forwarding: true });

    it('still no IPv6 way out', async () => {
      expect(clean6.sysctl['net.ipv6.conf.all.forwarding']).toBe('1');
      await expectNoIpv6(w6);
      expect(await w6.snapshot()).toEqual(clean6);
    });
  });
});

// PATH6 then PATH4, one answer line each.
const BOTH = ['sh', '-c', `${PATH6.join(' ')}; ${PATH4.join(' ')}`];

describe('IPv6 nat', () => {
  // In this world the fake host's only IPv6 default route is the fast one: ups has no IPv6
  // router of its own. README: --via6 defaults to the host's IPv6 default route on that
  // interface, "nsroute says so when there is none". Guessing would mean a leak or a black hole.
  it('--ipv6 nat --via on a link without an IPv6 default route: refused with the fix, nothing changed', async () => {
    const n = w.name('n1');
    const fastBefore = await w.gatewayPackets('fast');
    const r = await w.nsroute(['exec', n, '--ipv6', 'nat', '--via', SLOW_GW, '--', ...BOTH]);
    expect(r.exitCode, show(r)).toBe(125);
    expect(r.stdout, show(r)).toBe('');
    expect(r.stderr.trimEnd().split('\n'), show(r)).toHaveLength(1);
    expect(r.stderr, show(r)).toMatch(/^nsroute: .*--via6/);
    expect(w.netnsExists(n)).toBe(false);
    expect(delta(fastBefore, await w.gatewayPackets('fast'))).toEqual(NOTHING);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('--ipv6 nat --via --via6: IPv6 and IPv4 both leave by the slow uplink, the fast side sees nothing', async () => {
    const fastBefore = await w.gatewayPackets('fast');
    const r = await w.nsroute(['exec', w.name('n2'), '--ipv6', 'nat', '--via', SLOW_GW, '--via6', SLOW_GW6, '--', ...BOTH]);
    expectOk(r);
    expect(r.stdout.trim().split('\n')).toEqual([SLOW6, SLOW4]);
    expect(delta(fastBefore, await w.gatewayPackets('fast'))).toEqual(NOTHING);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('--ipv6 nat alone follows the host: fast, with the host address of upf', async () => {
    const slowBefore = await w.gatewayPackets('slow');
    const r = await w.nsroute(['exec', w.name('n3'), '--ipv6', 'nat', '--', ...BOTH]);
    expectOk(r);
    expect(r.stdout.trim().split('\n')).toEqual([FAST6, FAST4]);
    expect(delta(slowBefore, await w.gatewayPackets('slow'))).toEqual(NOTHING);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('profile keys ipv6 = "nat" and via6 do the same as the flags', async () => {
    const n = w.name('n4');
    w.writeProfile(n, `via = "${SLOW_GW}"\nipv6 = "nat"\nvia6 = "${SLOW_GW6}"\n`);
    const r = await w.nsroute(['exec', n, '--', ...BOTH]);
    expectOk(r);
    expect(r.stdout.trim().split('\n')).toEqual([SLOW6, SLOW4]);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('IPv6 nat on a host whose slow link has its own IPv6 default route', () => {
  let wr: World;
  let cleanR: Snapshot;
  useWorld((world, snapshot) => ((wr = world), (cleanR = snapshot)), { slowIpv6Default: true });

  it('--ipv6 nat --via finds the IPv6 router of that link: slow6 and slow, the fast side sees nothing', async () => {
    expect(await wr.hostPath(6)).toBe(FAST6);
    const fastBefore = await wr.gatewayPackets('fast');
    const r = await wr.nsroute(['exec', wr.name('n5'), '--ipv6', 'nat', '--via', SLOW_GW, '--', ...BOTH]);
    expectOk(r);
    expect(r.stdout.trim().split('\n')).toEqual([SLOW6, SLOW4]);
    expect(delta(fastBefore, await wr.gatewayPackets('fast'))).toEqual(NOTHING);
    expect(await wr.snapshot()).toEqual(cleanR);
  });

  it('the profile key ipv6 = "nat" does the same as the flag; the host itself still goes fast while it is up', async () => {
    const n = wr.name('n6');
    wr.writeProfile(n, `via = "${SLOW_GW}"\nipv6 = "nat"\n`);
    const r = await wr.nsroute(['exec', n, '--', ...BOTH]);
    expectOk(r);
    expect(r.stdout.trim().split('\n')).toEqual([SLOW6, SLOW4]);
    expectOk(await wr.nsroute(['up', n]));
    try {
      expect((await wr.inNetns(n, BOTH, { timeoutMs: 10_000 })).stdout.trim().split('\n')).toEqual([SLOW6, SLOW4]);
      expect(await wr.hostPath(6)).toBe(FAST6);
      expect(await wr.hostPath(4)).toBe(FAST4);
    } finally {
      expectOk(await wr.nsroute(['down', n]));
    }
    expect(await wr.snapshot()).toEqual(cleanR);
  });
});

describe('DNS is counted at each server', () => {
  it('--via slow --dns DNS_SERVER: only the slow dnsmasq is asked, the fast side sees no DNS packet', async () => {
    const probe = probeName('leak-dns');
    const fastBefore = await w.gatewayPackets('fast');
    const r = await w.nsroute(['exec', w.name('q1'), '--via', SLOW_GW, '--dns', DNS_SERVER, '--', 'getent', 'ahostsv4', probe]);
    expectOk(r);
    expect(ahostsAddresses(r.stdout)).toEqual([SLOW_ANSWER]);
    expect(await w.waitDnsQueries('slow', probe)).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('fast', probe)).toBe(0);
    expect(delta(fastBefore, await w.gatewayPackets('fast')).dns).toBe(0);
    expect(await w.snapshot()).toEqual(clean);
  });

  // The host's resolv.conf names the fast gateway (FAST_GW). The namespace uses that server,
  // but reaches it by the namespace's route: the query goes out of the slow uplink, where
  // nobody answers for FAST_GW, so the lookup fails. It never goes out of the fast uplink.
  // (README: a host name server the --via uplink cannot reach needs --dns.)
  it("--via slow without --dns: the host's server is asked by the slow route, so the lookup fails, never fast", async () => {
    const probe = probeName('leak-hostdns');
    const before = { fast: await w.gatewayPackets('fast'), slow: await w.gatewayPackets('slow') };
    const r = await w.nsroute(['exec', w.name('q2'), '--via', SLOW_GW, '--', 'sh', '-c', `cat /etc/resolv.conf; echo ---; ${QUICK_DNS.map((a) => `'${a}'`).join(' ')} getent ahostsv4 ${probe}`], {
      timeoutMs: 20_000,
    });
    expect(r.signal, show(r)).toBeNull();
    const [resolv = '', answer = ''] = r.stdout.split('---\n');
    expect(resolv).toMatch(new RegExp(`^nameserver ${FAST_GW.replace(/\./g, '\\.')}$`, 'm'));
    expect(r.exitCode, show(r)).not.toBe(0);
    expect(ahostsAddresses(answer)).not.toContain(FAST_ANSWER);
    expect(ahostsAddresses(answer)).toEqual([]);
    expect(w.dnsQueries('fast', probe)).toBe(0);
    expect(delta(before.fast, await w.gatewayPackets('fast')).dns).toBe(0);
    // It did go somewhere: out of the slow uplink, as the namespace's route says.
    expect(delta(before.slow, await w.gatewayPackets('slow')).dns).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('slow', probe)).toBe(0);
    expect(await w.snapshot()).toEqual(clean);
  });
});
