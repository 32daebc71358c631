// Bridge and macvlan modes (issue #6): the namespace gets its own address on a LAN of the host,
// by a veth on an existing bridge (--bridge), on a bridge nsroute makes around an uplink and
// takes down again (--uplink), or by a macvlan; static (--address/--via) or by DHCP. No NAT:
// the far side sees the namespace's own address. The LAN is the world's second link, fake
// host lan1 (or br0) <-> fast gateway lanb; one world per describe, with the option it needs.
import { existsSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DHCP_FIRST,
  DHCP_LAST,
  DNS_SERVER,
  FAST_ANSWER,
  FAST_DEV,
  FAST_GW,
  HOST_FAST_ADDR,
  HOST_LAN_ADDR,
  HOST_SLOW_ADDR,
  HOST_SLOW_ADDR6,
  LAN_BRIDGE,
  LAN_DEV,
  LAN_GW,
  LAN_PREFIX,
  PATH_SERVER,
  SLOW_DEV,
  SLOW_GW,
  SLOW_GW6,
  type RunResult,
  type Snapshot,
  type World,
  waitFor,
} from '../world/world.js';
import {
  ahostsAddresses,
  expectOk,
  expectUserError,
  LAN_PATH4,
  marker,
  PATH4,
  probeName,
  show,
  statusJson,
  useWorld,
  waitForFile,
} from '../world/helpers.js';

const lan = (host: number): string => `10.99.3.${host}`;
const staticArgs = (host: number): string[] => ['--address', `${lan(host)}/${LAN_PREFIX}`, '--via', LAN_GW];
const lastOctet = (a: string): number => Number(a.split('.')[3]);
const FAST_HOST = `fast ${HOST_FAST_ADDR}`;
const LAN_HOST = `lan ${HOST_LAN_ADDR}`;

async function path(w: World, name: string): Promise<string> {
  const r = await w.nsroute(['exec', name, '--', ...PATH4], { timeoutMs: 20_000 });
  expect(r.exitCode, show(r)).toBe(0);
  return r.stdout.trim();
}

// A leased address: inside the world's DHCP range.
function expectLeased(address: string | undefined, why: string): asserts address is string {
  expect(address, why).toMatch(/^10\.99\.3\.\d+$/);
  expect(lastOctet(address!), why).toBeGreaterThanOrEqual(lastOctet(DHCP_FIRST));
  expect(lastOctet(address!), why).toBeLessThanOrEqual(lastOctet(DHCP_LAST));
}

function nameservers(resolvConf: string): string[] {
  return resolvConf
    .split('\n')
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((s): s is string => !!s);
}

// `PATH4; cat /etc/resolv.conf; getent` inside, split into its three parts.
const pathResolvLookup = (probe: string): string[] => ['sh', '-c', `${PATH4.join(' ')}; echo ---; cat /etc/resolv.conf; echo ---; getent ahostsv4 ${probe}`];
function splitPathResolvLookup(r: RunResult): { path: string; dns: string[]; addresses: string[] } {
  const [p = '', resolv = '', lookup = ''] = r.stdout.split('---\n');
  return { path: p.trim(), dns: nameservers(resolv), addresses: ahostsAddresses(lookup) };
}

// The dnsmasq log has ACK for `address` (and, with release, a RELEASE of it after that).
async function expectDhcp(w: World, address: string, release: boolean): Promise<void> {
  const seen = (): string[] => w.dhcpEvents().filter((e) => e.address === address && ['DHCPACK', 'DHCPRELEASE'].includes(e.event)).map((e) => e.event);
  // dnsmasq logs from its event loop, possibly just after it answered.
  await waitFor(() => seen().includes(release ? 'DHCPRELEASE' : 'DHCPACK'), 'the DHCP log', 3000).catch(() => {
    /* the expectations below say what is missing */
  });
  const events = seen();
  expect(events, `DHCP log:\n${w.dhcpLog()}`).toContain('DHCPACK');
  if (release) expect(events.slice(events.lastIndexOf('DHCPACK')), `DHCP log:\n${w.dhcpLog()}`).toContain('DHCPRELEASE');
  else expect(events.slice(events.lastIndexOf('DHCPACK')), `DHCP log:\n${w.dhcpLog()}`).not.toContain('DHCPRELEASE');
}

interface Link {
  ifname: string;
  master?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}
async function links(w: World, argv: string[]): Promise<Link[]> {
  const r = await w.inHost(['ip', '-j', '-d', ...argv]);
  expect(r.exitCode, show(r)).toBe(0);
  return JSON.parse(r.stdout || '[]') as Link[];
}
const inet = (l: Link | undefined): string[] => (l?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);

// Where lan1 and the host's LAN address are: lan1's master (if any), its kind and ports, and
// the IPv4 addresses on lan1 and on that master.
async function lanLayout(w: World): Promise<{ master: string | null; kind: string | null; ports: string[]; onUplink: string[]; onMaster: string[] }> {
  const [dev] = await links(w, ['addr', 'show', 'dev', LAN_DEV]);
  const master = dev?.master ?? null;
  if (!master) return { master, kind: null, ports: [], onUplink: inet(dev), onMaster: [] };
  const [m] = await links(w, ['addr', 'show', 'dev', master]);
  const ports = (await links(w, ['link', 'show', 'master', master])).map((l) => l.ifname).sort();
  return { master, kind: m?.linkinfo?.info_kind ?? null, ports, onUplink: inet(dev), onMaster: inet(m) };
}

describe('bridge mode on an existing bridge (--bridge br0)', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { lanBridge: true, lanDhcp: true });

  it('the namespace has its own LAN address, unmasqueraded; the host keeps its connectivity', async () => {
    const n = w.name('eb1');
    const ready = marker(w, 'eb1.ready');
    const stop = marker(w, 'eb1.stop');
    const held = w.spawnNsroute(
      ['exec', n, '--mode', 'bridge', '--bridge', LAN_BRIDGE, ...staticArgs(50), '--', 'sh', '-c',
        `${PATH4.join(' ')}; ${LAN_PATH4.join(' ')}; touch '${ready}'; while [ ! -e '${stop}' ]; do sleep 0.05; done`],
      { timeoutMs: 30_000 },
    );
    try {
      const early = await Promise.race([waitForFile(ready, 20_000).then(() => null, (e: unknown) => e), held.result]);
      if (early !== null) throw new Error(`the command did not get ready: ${early instanceof Error ? early.message : show(early as RunResult)}`);
      // While the namespace sits on br0: the host's own paths (default route and LAN) still work.
      expect(await w.hostPath(4)).toBe(FAST_HOST);
      expect(await w.hostLanPath()).toBe(LAN_HOST);
      const layout = await lanLayout(w);
      expect(layout.master).toBe(LAN_BRIDGE);
      expect(layout.onMaster).toEqual([`${HOST_LAN_ADDR}/${LAN_PREFIX}`]);
      expect(layout.ports, 'a veth of the namespace joined br0 next to lan1').toHaveLength(2);
    } finally {
      writeFileSync(stop, '');
    }
    const r = await held.result;
    expectOk(r);
    expect(r.stdout).toBe(`fast ${lan(50)}\nlan ${lan(50)}\n`);
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('the profile keys mode, bridge, address and via do what the flags do', async () => {
    const n = w.name('eb2');
    w.writeProfile(n, `mode = "bridge"\nbridge = "${LAN_BRIDGE}"\naddress = "${lan(55)}/${LAN_PREFIX}"\nvia = "${LAN_GW}"\n`);
    expect(await path(w, n)).toBe(`fast ${lan(55)}`);
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('--dhcp: up leases an address (status shows it), exec uses it and its DNS, down releases it', async () => {
    const n = w.name('eb3');
    const up = await w.nsroute(['up', n, '--mode', 'bridge', '--bridge', LAN_BRIDGE, '--dhcp'], { timeoutMs: 30_000 });
    let leased: string | undefined;
    try {
      expectOk(up);
      const s = await statusJson(w, n);
      expect(s.mode).toBe('bridge');
      leased = s.namespaceAddress;
      expectLeased(leased, JSON.stringify(s));
      expect(s.dns, 'status shows the DNS servers of the lease').toEqual([DNS_SERVER]);
      await expectDhcp(w, leased, false);
      const probe = probeName('brdhcp');
      const r = await w.nsroute(['exec', n, '--', ...pathResolvLookup(probe)], { timeoutMs: 20_000 });
      expectOk(r);
      expect(splitPathResolvLookup(r), show(r)).toEqual({ path: `fast ${leased}`, dns: [DNS_SERVER], addresses: [FAST_ANSWER] });
      expect(await w.waitDnsQueries('fast', probe)).toBeGreaterThanOrEqual(1);
      expect(await w.hostPath(4)).toBe(FAST_HOST);
      expect(await w.hostLanPath()).toBe(LAN_HOST);
      // check proves it from inside: its own leased address, the lease's DNS answering.
      const chk = await w.nsroute(['check', n, '--json'], { timeoutMs: 20_000 });
      expect(chk.exitCode, show(chk)).toBe(0);
      const route = (JSON.parse(chk.stdout) as { checks: { id: string; inside?: { source: string; gateway: string } }[] }).checks.find((c) => c.id === 'route');
      expect(route?.inside).toMatchObject({ source: leased, gateway: LAN_GW });
    } finally {
      expectOk(await w.nsroute(['down', n, '--force'], { timeoutMs: 30_000 }));
    }
    await expectDhcp(w, leased, true);
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('bridge mode taking over an uplink (--uplink lan1)', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { lan: true });

  // netns-add, bridge-takeover, veth-bridge, ns-config-lan, netns-files; one test per step.
  const takeoverCrashes = (['apply', 'undo'] as const).flatMap((phase) => [0, 1, 2, 3, 4].map((k) => [phase, k] as const));
  it.each(takeoverCrashes)('nsroute SIGKILLed after %s step %i of a takeover: gc puts lan1 back exactly', async (phase, k) => {
    const n = w.name(`tf${phase[0]}${k}`);
    const r = await w.nsroute(['exec', n, '--mode', 'bridge', '--uplink', LAN_DEV, '--address', `${lan(60 + k)}/${LAN_PREFIX}`, '--via', LAN_GW, '--', 'true'], {
      env: { NSROUTE_TEST_CRASH: `${phase}:${k}` },
    });
    expect(r.signal, `${phase}:${k} ${show(r)}`).toBe('SIGKILL');
    const gc = await w.nsroute(['gc', '--json']);
    expectOk(gc);
    expect(await w.snapshot(), `after gc, crash at ${phase}:${k}`).toEqual(clean);
  });

  it('lan1 goes into a new bridge with its address and routes; shared by two namespaces; restored exactly after the last', async () => {
    // A route of the host through lan1 (as a default route through the uplink would be), so
    // that "its routes move to the bridge and come back" shows: the host's path to the path
    // server then goes over the LAN.
    expectOk(await w.inHost(['ip', 'route', 'add', `${PATH_SERVER}/32`, 'via', LAN_GW, 'dev', LAN_DEV]));
    const n1 = w.name('tb1');
    const n2 = w.name('tb2');
    try {
      expect(await w.hostPath(4)).toBe(`fast ${HOST_LAN_ADDR}`);
      const base = await w.snapshot();
      try {
        expectOk(await w.nsroute(['up', n1, '--mode', 'bridge', '--uplink', LAN_DEV, ...staticArgs(51)], { timeoutMs: 30_000 }));
        const s = await statusJson(w, n1);
        expect(s.mode).toBe('bridge');
        expect(s.namespaceAddress).toBe(lan(51));
        expect(await path(w, n1)).toBe(`fast ${lan(51)}`);
        // The host: its LAN address now sits on the bridge, lan1 is a port without it, and
        // the host still reaches the LAN and, by the moved route, the path server over it.
        const taken = await lanLayout(w);
        expect(taken.master, 'lan1 is enslaved to a bridge').not.toBeNull();
        expect(taken).toMatchObject({ kind: 'bridge', onUplink: [], onMaster: [`${HOST_LAN_ADDR}/${LAN_PREFIX}`] });
        expect(taken.ports).toContain(LAN_DEV);
        expect(taken.ports).toHaveLength(2);
        expect(await w.hostLanPath()).toBe(LAN_HOST);
        expect(await w.hostPath(4)).toBe(`fast ${HOST_LAN_ADDR}`);

        // A second namespace on the same uplink joins the same bridge.
        expectOk(await w.nsroute(['up', n2, '--mode', 'bridge', '--uplink', LAN_DEV, ...staticArgs(54)], { timeoutMs: 30_000 }));
        const shared = await lanLayout(w);
        expect(shared).toMatchObject({ master: taken.master, onUplink: [], onMaster: [`${HOST_LAN_ADDR}/${LAN_PREFIX}`] });
        expect(shared.ports).toHaveLength(3);
        expect(await path(w, n2)).toBe(`fast ${lan(54)}`);
        expect(await path(w, n1)).toBe(`fast ${lan(51)}`);

        // The first goes: the bridge stays for the second, the host is still fine.
        expectOk(await w.nsroute(['down', n1]));
        const left = await lanLayout(w);
        expect(left).toMatchObject({ master: taken.master, onUplink: [], onMaster: [`${HOST_LAN_ADDR}/${LAN_PREFIX}`] });
        expect(left.ports).toHaveLength(2);
        expect(await path(w, n2)).toBe(`fast ${lan(54)}`);
        expect(await w.hostLanPath()).toBe(LAN_HOST);
        expect(await w.hostPath(4)).toBe(`fast ${HOST_LAN_ADDR}`);

        // The last goes: lan1 is back exactly as it was (address, route), the bridge is gone.
        expectOk(await w.nsroute(['down', n2]));
        expect(await lanLayout(w)).toEqual({ master: null, kind: null, ports: [], onUplink: [`${HOST_LAN_ADDR}/${LAN_PREFIX}`], onMaster: [] });
        expect(await w.hostPath(4)).toBe(`fast ${HOST_LAN_ADDR}`);
        expect(await w.hostLanPath()).toBe(LAN_HOST);
        expect(w.netnsExists(n1)).toBe(false);
        expect(w.netnsExists(n2)).toBe(false);
        expect(await w.snapshot()).toEqual(base);
      } finally {
        await w.nsroute(['down', n1, '--force']);
        await w.nsroute(['down', n2, '--force']);
      }
    } finally {
      await w.inHost(['ip', 'route', 'del', `${PATH_SERVER}/32`, 'via', LAN_GW, 'dev', LAN_DEV]);
    }
    expect(await w.hostPath(4)).toBe(FAST_HOST);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('exec takes over and gives back lan1 for one command', async () => {
    const n = w.name('tb3');
    const r = await w.nsroute(['exec', n, '--mode', 'bridge', '--uplink', LAN_DEV, ...staticArgs(56), '--', 'sh', '-c', `${PATH4.join(' ')}; ${LAN_PATH4.join(' ')}`], {
      timeoutMs: 30_000,
    });
    expectOk(r);
    expect(r.stdout).toBe(`fast ${lan(56)}\nlan ${lan(56)}\n`);
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });
});

// Issue #10, finding 2: giving an uplink back ran `ip -4 -force -batch` over lines that
// included its IPv6 addresses, which `-4` rejects fatally: the bridge stayed with the address,
// the uplink had lost it, and `down` said it worked. The world's slow uplink ups has
// fd99:2::2/64 (nodad); here it also gets a second IPv6 address with flags, an IPv6 default
// (slowIpv6Default) and routes of both families in another table, all of which must come back.
describe('bridge mode taking over an uplink with IPv6 (--uplink ups)', () => {
  let w: World;
  let base: Snapshot;
  const EXTRA: string[][] = [
    ['ip', '-6', 'addr', 'add', 'fd99:2::7/64', 'dev', SLOW_DEV, 'nodad', 'noprefixroute'],
    ['ip', '-6', 'route', 'add', 'fd99:77::/64', 'via', SLOW_GW6, 'dev', SLOW_DEV, 'table', '300'],
    ['ip', '-4', 'route', 'add', '198.51.100.0/24', 'via', SLOW_GW, 'dev', SLOW_DEV, 'table', '300'],
  ];
  useWorld((world) => (w = world), { slowIpv6Default: true });
  const slow = (host: number): string => `10.99.2.${host}`;
  const args = (host: number): string[] => ['--mode', 'bridge', '--uplink', SLOW_DEV, '--address', `${slow(host)}/24`, '--via', SLOW_GW];

  beforeAll(async () => {
    for (const argv of EXTRA) expectOk(await w.inHost(argv));
    base = await w.snapshot();
  });
  afterAll(async () => {
    if (!w) return;
    await w.inHost(['ip', '-6', 'addr', 'del', 'fd99:2::7/64', 'dev', SLOW_DEV]);
    await w.inHost(['ip', '-6', 'route', 'flush', 'table', '300']);
    await w.inHost(['ip', '-4', 'route', 'flush', 'table', '300']);
  });

  async function addrsOf(dev: string): Promise<string[]> {
    const [l] = await links(w, ['addr', 'show', 'dev', dev]);
    return (l?.addr_info ?? []).filter((a) => !a.local.startsWith('fe80:')).map((a) => `${a.local}/${a.prefixlen}`);
  }
  async function bridgeOf(dev: string): Promise<string | undefined> {
    const [l] = await links(w, ['link', 'show', 'dev', dev]);
    return l?.master;
  }

  it('up moves its IPv4 and IPv6 addresses to the bridge; down gives every one back and removes the bridge', async () => {
    const n = w.name('v6a');
    try {
      expectOk(await w.nsroute(['up', n, ...args(50)], { timeoutMs: 60_000 }));
      const bridge = await bridgeOf(SLOW_DEV);
      expect(bridge, 'ups is a bridge port').toBeTruthy();
      expect((await addrsOf(bridge!)).sort()).toEqual([`${HOST_SLOW_ADDR}/24`, `${HOST_SLOW_ADDR6}/64`, 'fd99:2::7/64'].sort());
      expect(await addrsOf(SLOW_DEV)).toEqual([]);
      expect(await path(w, n)).toBe(`slow ${slow(50)}`);
      const down = await w.nsroute(['down', n], { timeoutMs: 60_000 });
      expectOk(down);
      expect(await w.snapshot(), 'ups has all its addresses and routes back, the bridge is gone').toEqual(base);
    } finally {
      await w.nsroute(['down', n, '--force'], { timeoutMs: 60_000 });
      await w.nsroute(['gc'], { timeoutMs: 60_000 });
    }
  });

  // One test per step, so that a slow step cannot fail the others.
  // netns-add, bridge-takeover, veth-bridge, ns-config-lan, netns-files
  const crashPoints = (['apply', 'undo'] as const).flatMap((phase) => [0, 1, 2, 3, 4].map((k) => [phase, k] as const));
  it.each(crashPoints)('SIGKILL after %s step %i: gc gives ups back exactly', async (phase, k) => {
    const n = w.name(`v6${phase[0]}${k}`);
    const r = await w.nsroute(['exec', n, ...args(60 + k), '--', 'true'], { env: { NSROUTE_TEST_CRASH: `${phase}:${k}` }, timeoutMs: 60_000 });
    expect(r.signal, show(r)).toBe('SIGKILL');
    expectOk(await w.nsroute(['gc', '--json'], { timeoutMs: 60_000 }));
    expect(await w.snapshot(), `after gc, crash at ${phase}:${k}`).toEqual(base);
    expect(w.netnsExists(n)).toBe(false);
  });

  it('a takeover that fails half-way (a tun device cannot be a bridge port) is rolled back completely', async () => {
    const n = w.name('v6t');
    const tun = 'tk0';
    expectOk(await w.inHost(['ip', 'tuntap', 'add', 'dev', tun, 'mode', 'tun']));
    try {
      expectOk(await w.inHost(['ip', 'link', 'set', tun, 'up']));
      expectOk(await w.inHost(['ip', 'addr', 'add', '10.99.7.2/24', 'dev', tun]));
      expectOk(await w.inHost(['ip', 'addr', 'add', 'fd99:7::2/64', 'dev', tun, 'nodad']));
      const before = await w.snapshot();
      const r = await w.nsroute(['up', n, '--mode', 'bridge', '--uplink', tun, '--address', '10.99.7.50/24', '--via', '10.99.7.1'], { timeoutMs: 60_000 });
      expect(r.exitCode, show(r)).not.toBe(0);
      expect(w.netnsExists(n)).toBe(false);
      expect(await w.snapshot(), 'no bridge left; the tun device has both its addresses').toEqual(before);
    } finally {
      await w.nsroute(['down', n, '--force'], { timeoutMs: 60_000 });
      await w.inHost(['ip', 'link', 'del', tun]);
    }
    expect(await w.snapshot()).toEqual(base);
  });

  it('--uplink lo fails (refused, or half-way) and leaves nothing behind: no nsb-lo, lo as it was', async () => {
    const n = w.name('v6l');
    try {
      const r = await w.nsroute(['up', n, '--mode', 'bridge', '--uplink', 'lo', '--address', `${slow(52)}/24`, '--via', SLOW_GW], { timeoutMs: 60_000 });
      expect(r.exitCode, show(r)).not.toBe(0);
      expect(w.netnsExists(n)).toBe(false);
      expect(await w.snapshot()).toEqual(base);
    } finally {
      await w.nsroute(['down', n, '--force'], { timeoutMs: 60_000 });
    }
  });

  it('when ups cannot take its IPv6 back, down fails loudly and keeps bridge and record; gc finishes once it can', async () => {
    const n = w.name('v6d');
    const sysctl = `net.ipv6.conf.${SLOW_DEV}.disable_ipv6`;
    try {
      expectOk(await w.nsroute(['up', n, ...args(51)], { timeoutMs: 60_000 }));
      const bridge = (await bridgeOf(SLOW_DEV))!;
      // Another tool turns IPv6 off on ups while it is a bridge port: it cannot take fd99:2::2 back.
      expectOk(await w.inHost(['sysctl', '-q', '-w', `${sysctl}=1`]));
      const down = await w.nsroute(['down', n], { timeoutMs: 60_000 });
      expect(down.exitCode, show(down)).toBe(1);
      expect(down.stdout, show(down)).toBe('');
      expect(down.stderr, show(down)).toContain(HOST_SLOW_ADDR6);
      // The address was not thrown away with the bridge: the bridge is kept and still holds it.
      expect(await addrsOf(bridge), 'the bridge keeps the addresses ups could not take').toEqual(expect.arrayContaining([`${HOST_SLOW_ADDR6}/64`, 'fd99:2::7/64']));
      expect(await addrsOf(SLOW_DEV)).toEqual([`${HOST_SLOW_ADDR}/24`]);
      const st = await w.nsroute(['status', n, '--json']);
      expect((JSON.parse(st.stdout) as { status: string }).status, `the record is kept for a retry\n${show(st)}`).toBe('interrupted');
      const again = await w.nsroute(['gc', '--json'], { timeoutMs: 60_000 });
      expect(again.exitCode, show(again)).toBe(1);
      expect((JSON.parse(again.stdout) as { failed: { name: string; error: string }[] }).failed, show(again)).toEqual([
        { name: n, error: expect.stringContaining(HOST_SLOW_ADDR6) as string },
      ]);
      // IPv6 on again: gc gives it back and finishes the teardown.
      expectOk(await w.inHost(['sysctl', '-q', '-w', `${sysctl}=0`]));
      expectOk(await w.nsroute(['gc'], { timeoutMs: 60_000 }));
      // The link-local address the kernel makes again goes through DAD first.
      await waitFor(async () => !JSON.stringify(await addrsOf(SLOW_DEV)).includes('tentative') && !(await w.inHost(['ip', '-6', 'addr', 'show', 'dev', SLOW_DEV, 'tentative'])).stdout.trim(), 'DAD on ups', 20_000);
      expect(await w.snapshot()).toEqual(base);
      expect(w.netnsExists(n)).toBe(false);
    } finally {
      await w.inHost(['sysctl', '-q', '-w', `${sysctl}=0`]);
      await w.nsroute(['down', n, '--force'], { timeoutMs: 60_000 });
      await w.nsroute(['gc'], { timeoutMs: 60_000 });
    }
  });
});

describe('macvlan mode (--mode macvlan --uplink lan1)', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { lanDhcp: true });

  it('static: the far side sees the namespace\'s own address', async () => {
    const n = w.name('mv1');
    const r = await w.nsroute(['exec', n, '--mode', 'macvlan', '--uplink', LAN_DEV, ...staticArgs(52), '--', 'sh', '-c', `${PATH4.join(' ')}; ${LAN_PATH4.join(' ')}`], {
      timeoutMs: 20_000,
    });
    expectOk(r);
    expect(r.stdout).toBe(`fast ${lan(52)}\nlan ${lan(52)}\n`);
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('--dhcp: a leased address, the lease\'s DNS server, the lease released on exit', async () => {
    const n = w.name('mv2');
    const probe = probeName('mvdhcp');
    const r = await w.nsroute(['exec', n, '--mode', 'macvlan', '--uplink', LAN_DEV, '--dhcp', '--', ...pathResolvLookup(probe)], { timeoutMs: 30_000 });
    expectOk(r);
    const got = splitPathResolvLookup(r);
    const leased = /^fast (\S+)$/.exec(got.path)?.[1];
    expectLeased(leased, show(r));
    expect(got, show(r)).toEqual({ path: `fast ${leased}`, dns: [DNS_SERVER], addresses: [FAST_ANSWER] });
    expect(await w.waitDnsQueries('fast', probe)).toBeGreaterThanOrEqual(1);
    await expectDhcp(w, leased, true);
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('the profile keys mode, uplink, address and via do what the flags do; flags override them', async () => {
    const n = w.name('mv3');
    w.writeProfile(n, `mode = "macvlan"\nuplink = "${LAN_DEV}"\naddress = "${lan(53)}/${LAN_PREFIX}"\nvia = "${LAN_GW}"\n`);
    try {
      expectOk(await w.nsroute(['up', n], { timeoutMs: 30_000 }));
      const s = await statusJson(w, n);
      expect(s.mode).toBe('macvlan');
      expect(s.namespaceAddress).toBe(lan(53));
      expect(await path(w, n)).toBe(`fast ${lan(53)}`);
      expect(await w.hostLanPath()).toBe(LAN_HOST);
      const chk = await w.nsroute(['check', n], { timeoutMs: 20_000 });
      expect(chk.exitCode, show(chk)).toBe(0);
      expect(chk.stdout).toContain(`ok   route: via ${LAN_GW} dev eth0 (macvlan on ${LAN_DEV}), source ${lan(53)} (its own LAN address)`);
      expect(chk.stdout).toContain('ok   nat: no NAT in macvlan mode');
    } finally {
      expectOk(await w.nsroute(['down', n, '--force']));
    }
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
    const r = await w.nsroute(['exec', n, '--address', `${lan(57)}/${LAN_PREFIX}`, '--', ...PATH4], { timeoutMs: 20_000 });
    expectOk(r);
    expect(r.stdout.trim()).toBe(`fast ${lan(57)}`);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('the profile key dhcp = true does what --dhcp does', async () => {
    const n = w.name('mv4');
    w.writeProfile(n, `mode = "macvlan"\nuplink = "${LAN_DEV}"\ndhcp = true\n`);
    const r = await w.nsroute(['exec', n, '--', 'sh', '-c', `${PATH4.join(' ')}; echo ---; cat /etc/resolv.conf`], { timeoutMs: 30_000 });
    expectOk(r);
    const [p = '', resolv = ''] = r.stdout.split('---\n');
    const leased = /^fast (\S+)$/.exec(p.trim())?.[1];
    expectLeased(leased, show(r));
    expect(nameservers(resolv), show(r)).toEqual([DNS_SERVER]);
    await expectDhcp(w, leased, true);
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('bad input for bridge and macvlan modes leaves the host unchanged', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { lanBridge: true });

  const st = (host: number): string[] => staticArgs(host);
  // [what, NAME suffix, options, what the one stderr line must mention]
  // Not tested: bridging a wireless interface (the world has no wifi device).
  const cases: [string, string, string[], RegExp][] = [
    ['--mode that does not exist', 'bm1', ['--mode', 'tunnel'], /tunnel|mode/i],
    ['--bridge with --mode nat', 'bm2', ['--mode', 'nat', '--bridge', LAN_BRIDGE], /bridge/i],
    ['--uplink with --mode nat', 'bm3', ['--mode', 'nat', '--uplink', LAN_DEV], /uplink|mode/i],
    ['--dhcp with --mode nat', 'bm4', ['--mode', 'nat', '--dhcp'], /dhcp|mode/i],
    ['bridge mode with neither --bridge nor --uplink', 'bm5', ['--mode', 'bridge', ...st(60)], /bridge|uplink/i],
    ['macvlan mode without --uplink', 'bm6', ['--mode', 'macvlan', ...st(60)], /uplink/i],
    ['--address without --via', 'bm7', ['--mode', 'bridge', '--bridge', LAN_BRIDGE, '--address', `${lan(60)}/${LAN_PREFIX}`], /via|gateway/i],
    ['--address with --dhcp', 'bm8', ['--mode', 'bridge', '--bridge', LAN_BRIDGE, ...st(60), '--dhcp'], /dhcp/i],
    ['--address that is not a CIDR', 'bm9', ['--mode', 'bridge', '--bridge', LAN_BRIDGE, '--address', '10.99.3.300/24', '--via', LAN_GW], /address|10\.99\.3\.300/i],
    ['a bridge that does not exist', 'bb1', ['--mode', 'bridge', '--bridge', 'nosuchbr0', ...st(60)], /nosuchbr0/],
    ['--bridge naming an interface that is not a bridge', 'bb2', ['--mode', 'bridge', '--bridge', FAST_DEV, ...st(60)], new RegExp(FAST_DEV)],
    ['an uplink that does not exist (bridge)', 'bb3', ['--mode', 'bridge', '--uplink', 'nosuch0', ...st(60)], /nosuch0/],
    ['an uplink that does not exist (macvlan)', 'bb4', ['--mode', 'macvlan', '--uplink', 'nosuch0', ...st(60)], /nosuch0/],
    ['--address equal to the host\'s own on that LAN (bridge)', 'bo1', ['--mode', 'bridge', '--bridge', LAN_BRIDGE, '--address', `${HOST_LAN_ADDR}/${LAN_PREFIX}`, '--via', LAN_GW], /10\.99\.3\.2\b/],
    // lan1 is a port of the host's br0 here: taking it out would cut br0's LAN.
    ['--uplink that is a port of another bridge (bridge)', 'bp1', ['--mode', 'bridge', '--uplink', LAN_DEV, ...st(60)], new RegExp(`${LAN_DEV} is a port of bridge ${LAN_BRIDGE}`)],
    ['--uplink that is a port of another bridge (macvlan)', 'bp2', ['--mode', 'macvlan', '--uplink', LAN_DEV, ...st(60)], new RegExp(`${LAN_DEV} is a port of bridge ${LAN_BRIDGE}`)],
    ['--address equal to the host\'s own on that LAN (macvlan)', 'bo2', ['--mode', 'macvlan', '--uplink', FAST_DEV, '--address', `${HOST_FAST_ADDR}/24`, '--via', FAST_GW], /10\.99\.1\.2\b/],
  ];

  async function expectNothingCreated(name: string): Promise<void> {
    const leaked = w.netnsExists(name);
    if (leaked) await w.nsroute(['down', name, '--force']);
    expect(leaked, `netns ${name} was created`).toBe(false);
    expect(existsSync(`/etc/netns/${name}`)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  }

  // Also not "unknown option/key": the options exist, the value or combination is refused.
  function expectRefused(r: RunResult, code: number, mentions: RegExp): void {
    expectUserError(r, code);
    expect(r.stderr, show(r)).not.toMatch(/unknown (option|key)/i);
    expect(r.stderr, show(r)).toMatch(mentions);
  }

  for (const [what, suffix, opts, mentions] of cases) {
    it(`${what}: up exits 2, exec 125`, async () => {
      const name = w.name(suffix);
      expectRefused(await w.nsroute(['up', name, ...opts], { timeoutMs: 20_000 }), 2, mentions);
      await expectNothingCreated(name);
      const r = await w.nsroute(['exec', name, ...opts, '--', 'echo', 'ran'], { timeoutMs: 20_000 });
      expectRefused(r, 125, mentions);
      expect(r.stdout).toBe('');
      await expectNothingCreated(name);
    });
  }

  it('a profile with a mode that does not exist: up 2, naming the profile', async () => {
    const name = w.name('bp1');
    const file = w.writeProfile(name, 'mode = "tunnel"\n');
    const r = await w.nsroute(['up', name]);
    expectRefused(r, 2, /tunnel|mode/i);
    expect(r.stderr, show(r)).toContain(file);
    await expectNothingCreated(name);
  });

  it('a profile in bridge mode with neither bridge nor uplink: exec 125', async () => {
    const name = w.name('bp2');
    w.writeProfile(name, `mode = "bridge"\naddress = "${lan(61)}/${LAN_PREFIX}"\nvia = "${LAN_GW}"\n`);
    const r = await w.nsroute(['exec', name, '--', 'echo', 'ran']);
    expectRefused(r, 125, /bridge|uplink/i);
    expect(r.stdout).toBe('');
    await expectNothingCreated(name);
  });

  it('the same options are fine when valid (the cases above fail for the stated reason)', async () => {
    const a = w.name('bok1');
    const r = await w.nsroute(['exec', a, '--mode', 'bridge', '--bridge', LAN_BRIDGE, ...st(60), '--', ...PATH4], { timeoutMs: 20_000 });
    expectOk(r);
    expect(r.stdout.trim()).toBe(`fast ${lan(60)}`);
    await expectNothingCreated(a);
    // --mode nat is the default, unchanged.
    const b = w.name('bok2');
    const n = await w.nsroute(['exec', b, '--mode', 'nat', '--', ...PATH4], { timeoutMs: 20_000 });
    expectOk(n);
    expect(n.stdout.trim()).toBe(FAST_HOST);
    await expectNothingCreated(b);
  });
});
