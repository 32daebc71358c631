// Real hosts are not the clean fake host: strict reverse-path filtering, a firewall whose
// FORWARD policy is drop (Docker), systemd-resolved's loopback stub, and firewall tools that
// flush the whole ruleset. One world per describe, built with the matching option.
import { describe, expect, it } from 'vitest';
import {
  DNS_SERVER,
  FAST_ANSWER,
  FAST_GW,
  HOST_FAST_ADDR,
  HOST_SLOW_ADDR,
  SLOW_ANSWER,
  SLOW_GW,
  STUB_ADDR,
  STUB_ANSWER,
  waitFor,
  type Snapshot,
  type World,
} from '../world/world.js';
import { ahostsAddresses, expectOk, hostWatcherPid, PATH4, probeName, show, useWorld, delta } from '../world/helpers.js';


const SLOW4 = `slow ${HOST_SLOW_ADDR}`;
const FAST4 = `fast ${HOST_FAST_ADDR}`;

async function path(w: World, name: string, route: readonly string[]): Promise<string> {
  const r = await w.nsroute(['exec', name, ...route, '--', ...PATH4], { timeoutMs: 15_000 });
  expect(r.exitCode, show(r)).toBe(0);
  return r.stdout.trim();
}


describe('strict reverse-path filtering (rp_filter=1)', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { rpFilter: true });

  it('the world really is strict', () => {
    for (const i of ['all', 'default', 'lo', 'upf', 'ups']) expect(clean.sysctl[`net.ipv4.conf.${i}.rp_filter`], i).toBe('1');
  });

  // Replies from the slow gateway arrive on ups; the main table says 198.18.0.10 is reached via
  // upf, so strict rp_filter drops them unless nsroute makes the check use the uplink's table.
  it('--via slow works: TCP and DNS replies arriving on the slow uplink are accepted', async () => {
    const probe = probeName('rpf');
    const r = await w.nsroute(['exec', w.name('rp1'), '--via', SLOW_GW, '--dns', DNS_SERVER, '--', 'sh', '-c', `${PATH4.join(' ')}; getent ahostsv4 ${probe}`], {
      timeoutMs: 20_000,
    });
    const [first = '', ...rest] = r.stdout.split('\n');
    expect(first.trim(), show(r)).toBe(SLOW4);
    expect(ahostsAddresses(rest.join('\n')), show(r)).toEqual([SLOW_ANSWER]);
    expectOk(r);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('the default route still works and goes fast', async () => {
    expect(await path(w, w.name('rp2'), [])).toBe(FAST4);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a persistent --via namespace and the host side by side; rp_filter values are kept after down', async () => {
    const n = w.name('rp3');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    try {
      expect(await path(w, n, [])).toBe(SLOW4);
      expect(await w.hostPath(4)).toBe(FAST4);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    const after = await w.snapshot();
    for (const i of ['all', 'default', 'lo', 'upf', 'ups']) expect(after.sysctl[`net.ipv4.conf.${i}.rp_filter`], i).toBe('1');
    expect(after).toEqual(clean);
  });
});

describe('FORWARD policy drop (iptables, as Docker sets it)', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { forwardDrop: true });

  it('the world really drops forwarded traffic', () => {
    expect(clean.iptables).toMatch(/^:FORWARD DROP$/m);
    expect(clean.ip6tables).toMatch(/^:FORWARD DROP$/m);
    expect(clean.nft).toMatch(/table ip filter \{[\s\S]*policy drop;/);
  });

  it('exec via slow and by the default route both work; iptables and nft are as before after', async () => {
    expect(await path(w, w.name('fd1'), ['--via', SLOW_GW])).toBe(SLOW4);
    expect(await path(w, w.name('fd2'), [])).toBe(FAST4);
    const after = await w.snapshot();
    expect(after.iptables).toBe(clean.iptables);
    expect(after.ip6tables).toBe(clean.ip6tables);
    expect(after.nft).toBe(clean.nft);
    expect(after).toEqual(clean);
  });

  it('a persistent namespace: works while up, the FORWARD chain is exactly as before after down', async () => {
    const n = w.name('fd3');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', DNS_SERVER]));
    try {
      expect(await path(w, n, [])).toBe(SLOW4);
      const probe = probeName('fwd');
      const r = await w.nsroute(['exec', n, '--', 'getent', 'ahostsv4', probe], { timeoutMs: 15_000 });
      expectOk(r);
      expect(ahostsAddresses(r.stdout)).toEqual([SLOW_ANSWER]);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('a native nftables firewall with forward policy drop', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { nftForwardDrop: true });

  it('the world really drops forwarded traffic', () => {
    expect(clean.nft).toMatch(/table inet filter \{[\s\S]*hook forward priority filter; policy drop;/);
  });

  it('exec via slow and by the default route both work; the firewall is exactly as before after', async () => {
    const n = w.name('nf1');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', DNS_SERVER, '--no-watch']));
    try {
      // The holes sit at the top of the other tool's chain, tagged as nsroute's.
      const chain = await w.inHost(['nft', 'list', 'chain', 'inet', 'filter', 'forward']);
      expect(chain.stdout).toMatch(/iifname "nsr\*" accept comment "nsroute"\s+oifname "nsr\*" ct state established,related accept comment "nsroute"\s+ct state invalid drop/);
      expect(await path(w, n, [])).toBe(SLOW4);
      // A reload of that firewall drops the holes: check says so; the next command puts them back.
      expectOk(await w.inHost(['nft', 'flush', 'chain', 'inet', 'filter', 'forward']));
      expectOk(await w.inHost(['nft', 'add', 'rule', 'inet', 'filter', 'forward', 'ct', 'state', 'invalid', 'drop']));
      const broken = await w.nsroute(['check', n, '--json']);
      expect(broken.exitCode, show(broken)).toBe(4);
      const firewall = (JSON.parse(broken.stdout) as { checks: { id: string; ok: boolean; leak: boolean; blocking?: string[] }[] }).checks.find((c) => c.id === 'firewall');
      expect(firewall).toMatchObject({ ok: false, leak: false, blocking: ['nft inet filter forward'] });
      expect(await path(w, n, [])).toBe(SLOW4);
      expectOk(await w.nsroute(['check', n]));
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await path(w, w.name('nf2'), [])).toBe(FAST4);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('systemd-resolved stub on 127.0.0.53', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { resolvedStub: true });

  it('the stub answers the fake host and counts its queries', async () => {
    const probe = probeName('stub-host');
    expect(await w.hostLookup(STUB_ADDR, probe)).toEqual([STUB_ANSWER]);
    expect(await w.waitDnsQueries('stub', probe)).toBeGreaterThanOrEqual(1);
  });

  it('a namespace asks the upstream server (fast gateway), never the stub', async () => {
    const probe = probeName('stub-ns');
    const r = await w.nsroute(['exec', w.name('rs1'), '--', 'sh', '-c', `cat /etc/resolv.conf; echo ---; getent ahostsv4 ${probe}`], {
      timeoutMs: 20_000,
    });
    const [resolv = '', answer = ''] = r.stdout.split('---\n');
    const servers = resolv
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((s): s is string => !!s);
    expect(servers, show(r)).toContain(FAST_GW);
    expect(servers, show(r)).not.toContain(STUB_ADDR);
    expect(ahostsAddresses(answer), show(r)).toEqual([FAST_ANSWER]);
    expectOk(r);
    expect(await w.waitDnsQueries('fast', probe)).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('stub', probe)).toBe(0);
    expect(w.dnsQueries('slow', probe)).toBe(0);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('the firewall flushed under a running namespace', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

  for (const [what, argv] of [
    ['nft flush ruleset', ['nft', 'flush', 'ruleset']],
    ['nft delete table inet nsroute', ['nft', 'delete', 'table', 'inet', 'nsroute']],
  ] as const) {
    it(`${what}: the next exec restores nsroute's table before the command runs`, async () => {
      const n = w.name(what.startsWith('nft flush') ? 'ff1' : 'ff2');
      expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
      // The host watcher repairs a flush too, and under load it can win the race with the
      // exec: it is stopped (SIGSTOP, our own process) while the exec has to do it alone.
      let watcher = 0;
      let stopped = false;
      try {
        expect(await path(w, n, [])).toBe(SLOW4);
        watcher = (await waitFor(() => hostWatcherPid(w), 'the host watcher'))!;
        process.kill(watcher, 'SIGSTOP');
        stopped = true;
        expectOk(await w.inHost(argv));
        expect((await w.inHost(['nft', 'list', 'table', 'inet', 'nsroute'])).exitCode).not.toBe(0);
        const fastBefore = await w.gatewayPackets('fast');
        const slowBefore = await w.gatewayPackets('slow');
        const r = await w.nsroute(['exec', n, '--', ...PATH4], { timeoutMs: 15_000 });
        expect(r.stdout, show(r)).not.toMatch(/^fast/m);
        // Nothing went out unmasqueraded or by the fast uplink on the way.
        expect(delta(fastBefore, await w.gatewayPackets('fast')), `the fast gateway received packets; exec: ${show(r)}`).toEqual({
          path4: 0,
          path6: 0,
          dns: 0,
          foreign: 0,
        });
        expect(delta(slowBefore, await w.gatewayPackets('slow')).foreign, 'unmasqueraded packets at the slow gateway').toBe(0);
        expectOk(r);
        expect(r.stdout.trim()).toBe(SLOW4);
        const table = await w.inHost(['nft', 'list', 'table', 'inet', 'nsroute']);
        expect(table.exitCode, show(table)).toBe(0);
      } finally {
        if (stopped) process.kill(watcher, 'SIGCONT');
        expectOk(await w.nsroute(['down', n]));
      }
      expect(await w.snapshot()).toEqual(clean);
    });
  }
});
