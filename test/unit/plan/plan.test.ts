import { describe, expect, it } from 'vitest';
import { buildPlan, MARK_BASE, nsConfigLanLines, nsConfigLines, RULE_PREF, stepsFor, TABLE_BASE, uplinkRouteLines, uplinkRuleArgs, vethBridgeLines, vethLines } from '../../../src/plan/plan.js';
import { parseTag } from '../../../src/net/tag.js';
import { hostIfaceName } from '../../../src/net/names.js';
import type { HostFacts, NamespaceConfig, Step, Uplink } from '../../../src/plan/types.js';
import type { Profile } from '../../../src/profile/profile.js';
import type { AddrFact, LinkFact, RouteFact, RuleFact } from '../../../src/net/iproute-json.js';
import { catchUserError } from '../helpers.js';

// A laptop: eth0 on the home LAN (default route), eth1 on a second LAN with a slower router,
// systemd-resolved's stub in /etc/resolv.conf.
const STUB = 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n';

function facts(over: Partial<HostFacts> = {}): HostFacts {
  const links: LinkFact[] = [
    { index: 1, name: 'lo', up: true },
    { index: 2, name: 'eth0', up: true },
    { index: 3, name: 'eth1', up: true, kind: 'veth' },
  ];
  const addrs: AddrFact[] = [
    { dev: 'lo', family: 4, local: '127.0.0.1', prefix: 8 },
    { dev: 'lo', family: 6, local: '::1', prefix: 128 },
    { dev: 'eth0', family: 4, local: '192.168.1.50', prefix: 24 },
    { dev: 'eth0', family: 6, local: 'fe80::1', prefix: 64 },
    { dev: 'eth1', family: 4, local: '192.168.2.10', prefix: 24 },
  ];
  const routes: RouteFact[] = [
    { dst: 'default', table: 254, type: 'unicast', dev: 'eth0', gateway: '192.168.1.1' },
    { dst: '192.168.1.0/24', table: 254, type: 'unicast', dev: 'eth0' },
    { dst: '192.168.2.0/24', table: 254, type: 'unicast', dev: 'eth1' },
    { dst: '127.0.0.0/8', table: 255, type: 'local', dev: 'lo' },
    { dst: '192.168.1.50', table: 255, type: 'local', dev: 'eth0' },
    { dst: '192.168.1.255', table: 255, type: 'broadcast', dev: 'eth0' },
  ];
  const rules: RuleFact[] = [
    { priority: 0, table: 255 },
    { priority: 32766, table: 254 },
    { priority: 32767, table: 253 },
  ];
  return { links, addrs, routes, rules, netns: [], hostResolvConf: STUB, ...over };
}

function profile(over: Partial<Profile> = {}): Profile {
  return { name: 'slow', dns: [], ...over };
}

function other(name: string, subnet: string, uplink?: Uplink): NamespaceConfig {
  const [net] = subnet.split('/');
  const base = net!.split('.').map(Number);
  const ip = (d: number) => [base[0], base[1], base[2], base[3]! + d].join('.');
  return {
    name,
    mode: 'nat',
    hostIface: `nsr-${name}`,
    nsIface: 'eth0',
    subnet,
    hostAddress: ip(1),
    nsAddress: ip(2),
    prefix: Number(subnet.split('/')[1]),
    uplink,
    dns: ['192.168.2.1'],
    dnsSource: 'gateway',
  };
}


function step<K extends Step['kind']>(steps: Step[], kind: K): Extract<Step, { kind: K }> {
  const s = steps.find((x) => x.kind === kind);
  if (!s) throw new Error(`no ${kind} step`);
  return s as Extract<Step, { kind: K }>;
}

describe('buildPlan: steps', () => {
  it('orders the steps without --via', () => {
    const { steps } = buildPlan(profile(), facts(), []);
    expect(steps.map((s) => s.kind)).toEqual(['netns-add', 'route-guard', 'veth-add', 'ns-config', 'netns-files', 'ip-forward', 'fw-holes', 'nft-member']);
  });

  it('orders the steps with --via (uplink route before nft-member)', () => {
    const { steps } = buildPlan(profile({ via: '192.168.2.1' }), facts(), []);
    expect(steps.map((s) => s.kind)).toEqual(['netns-add', 'route-guard', 'veth-add', 'ns-config', 'netns-files', 'ip-forward', 'uplink-route', 'fw-holes', 'nft-member']);
  });

  it('adds IPv6 forwarding and the uplink IPv6 route with --ipv6 nat', () => {
    const f = facts();
    f.routes6 = [{ dst: 'default', table: 254, type: 'unicast', dev: 'eth1', gateway: 'fe80::1' }];
    const { config, steps } = buildPlan(profile({ via: '192.168.2.1', ipv6: 'nat' }), f, []);
    expect(steps.map((s) => s.kind)).toEqual(['netns-add', 'route-guard', 'veth-add', 'ns-config', 'netns-files', 'ip-forward', 'ip6-forward', 'uplink-route', 'uplink-route6', 'fw-holes', 'nft-member']);
    expect(config).toMatchObject({ ipv6: 'nat', subnet6: 'fd6e:7372:ae7:0::/64', hostAddress6: 'fd6e:7372:ae7:0::1', nsAddress6: 'fd6e:7372:ae7:0::2', via6: 'fe80::1' });
    expect(step(steps, 'uplink-route6')).toEqual({ kind: 'uplink-route6', uplink: config.uplink, via6: 'fe80::1' });
    expect(vethLines(step(steps, 'veth-add'))).toEqual(
      expect.arrayContaining(['address add fe80::1/64 dev nsr-slow nodad', 'address add fd6e:7372:ae7:0::1/64 dev nsr-slow nodad', 'route replace fd6e:7372:ae7:0::/64 dev nsr-slow table 7101']),
    );
    expect(nsConfigLines(step(steps, 'ns-config'))).toEqual(expect.arrayContaining(['route add default via fe80::1 dev eth0', 'address add fd6e:7372:ae7:0::2/64 dev eth0 nodad']));
  });

  it('--ipv6 nat with --via needs an IPv6 router on the uplink: --via6 or a default route there', () => {
    const e = catchUserError(() => buildPlan(profile({ via: '192.168.2.1', ipv6: 'nat' }), facts(), []));
    expect(e.message).toBe('eth1 has no IPv6 default route to take the namespace\'s IPv6 traffic');
    expect(e.hint).toContain('--via6');
    expect(buildPlan(profile({ via: '192.168.2.1', ipv6: 'nat', via6: 'fd00::1' }), facts(), []).config.via6).toBe('fd00::1');
    // Without an uplink, IPv6 follows the host's routing: no router needed.
    expect(buildPlan(profile({ ipv6: 'nat' }), facts(), []).config.via6).toBeUndefined();
  });

  it('fills the steps from the config', () => {
    const { config, steps } = buildPlan(profile({ via: '192.168.2.1' }), facts(), []);
    expect(config).toMatchObject({
      name: 'slow',
      mode: 'nat',
      hostIface: 'nsr-slow',
      nsIface: 'eth0',
      subnet: '10.231.0.0/30',
      hostAddress: '10.231.0.1',
      nsAddress: '10.231.0.2',
      prefix: 30,
    });
    expect(step(steps, 'netns-add')).toEqual({ kind: 'netns-add', name: 'slow' });
    expect(step(steps, 'veth-add')).toEqual({ kind: 'veth-add', netns: 'slow', hostIface: 'nsr-slow', nsIface: 'eth0', hostCidr: '10.231.0.1/30', tag: 'nsroute:ns=slow:persistent=0:via=192.168.2.1:dev=eth1:table=7101:mark=0x6e720001:pref=4200', uplinkTable: 7101, subnet: '10.231.0.0/30' });
    expect(step(steps, 'ns-config')).toEqual({ kind: 'ns-config', netns: 'slow', nsIface: 'eth0', nsCidr: '10.231.0.2/30', gateway: '10.231.0.1' });
    expect(step(steps, 'uplink-route').uplink).toEqual(config.uplink);
    const files = step(steps, 'netns-files').files;
    expect(Object.keys(files).sort()).toEqual(['gai.conf', 'nsswitch.conf', 'resolv.conf']);
    expect(files['resolv.conf']).toContain('nameserver 192.168.2.1');
    expect(files['gai.conf']).toContain('::ffff:0:0/96');
  });

  it('uses the hashed host interface name for long names', () => {
    const { config } = buildPlan(profile({ name: 'a-very-long-namespace' }), facts(), []);
    expect(config.hostIface).toBe(hostIfaceName('a-very-long-namespace'));
    expect(config.hostIface).toMatch(/^nsr\.[a-z2-7]{11}$/);
  });

  // Issue 10, finding 9: a name collision used to fail with advice to `ip link del` the other
  // namespace's interface. Now: another namespace's interface is skipped (next candidate);
  // only NAME's own leftover (gc) and a foreign interface (another NAME) are errors, and no
  // message ever advises deleting an interface.
  describe('host interface already taken', () => {
    const name = 'a-very-long-namespace';
    const first = hostIfaceName(name);
    const withLink = (alias?: string) => {
      const f = facts();
      f.links.push({ index: 9, name: first, up: true, kind: 'veth', ...(alias ? { alias } : {}) });
      return f;
    };

    it("another namespace's tagged interface: takes the next candidate", () => {
      const { config, steps } = buildPlan(profile({ name }), withLink('nsroute:ns=other-ns:persistent=1'), []);
      expect(config.hostIface).toBe(hostIfaceName(name, 1));
      expect(step(steps, 'veth-add').hostIface).toBe(hostIfaceName(name, 1));
      expect(parseTag(step(steps, 'veth-add').tag)?.name).toBe(name);
    });

    it("an interface another namespace's state names (tag lost): takes the next candidate", () => {
      const o = { ...other('other-ns', '10.231.0.0/30'), hostIface: first };
      expect(buildPlan(profile({ name }), withLink(), [o]).config.hostIface).toBe(hostIfaceName(name, 1));
      expect(buildPlan(profile({ name }), facts(), [o]).config.hostIface).toBe(hostIfaceName(name, 1));
    });

    it('skips every taken candidate, in order', () => {
      const f = withLink('nsroute:ns=x1:persistent=0');
      f.links.push({ index: 10, name: hostIfaceName(name, 1), up: true, kind: 'veth', alias: 'nsroute:ns=x2:persistent=0' });
      expect(buildPlan(profile({ name }), f, []).config.hostIface).toBe(hostIfaceName(name, 2));
    });

    it("NAME's own leftover: advises nsroute gc", () => {
      const e = catchUserError(() => buildPlan(profile({ name }), withLink(`nsroute:ns=${name}:persistent=0`), []));
      expect(`${e.message} ${e.hint}`).toMatch(/nsroute gc/);
      expect(`${e.message} ${e.hint}`).not.toMatch(/ip link del/);
    });

    it("an untagged interface: someone else's, left alone, pick another NAME", () => {
      const e = catchUserError(() => buildPlan(profile({ name }), withLink('my own veth'), []));
      expect(e.message).toContain(first);
      expect(e.message).toMatch(/not nsroute's/);
      expect(e.hint).toMatch(/another NAME/);
      expect(`${e.message} ${e.hint}`).not.toMatch(/ip link del/);
    });
  });

  it('uses .0/.1 for a /31 subnet', () => {
    const { config, steps } = buildPlan(profile({ subnet: '10.99.0.0/31' }), facts(), []);
    expect(config).toMatchObject({ subnet: '10.99.0.0/31', hostAddress: '10.99.0.0', nsAddress: '10.99.0.1', prefix: 31 });
    expect(step(steps, 'ns-config').gateway).toBe('10.99.0.0');
  });

  it('is plain data (JSON round-trips, for the journal and --dry-run)', () => {
    const plan = buildPlan(profile({ via: '192.168.2.1' }), facts(), []);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });
});

describe('buildPlan: uplink', () => {
  it('finds the device whose network holds the gateway', () => {
    const { config } = buildPlan(profile({ via: '192.168.2.1' }), facts(), []);
    expect(config.uplink).toEqual({ via: '192.168.2.1', dev: 'eth1', table: TABLE_BASE + 1, mark: MARK_BASE + 1, pref: RULE_PREF });
    expect(config.uplink?.table).toBe(7101);
    expect(config.uplink?.mark).toBe(0x6e720001);
  });

  it('prefers the device `ip route get VIA` answered when several networks hold the gateway', () => {
    const f = facts({
      addrs: [...facts().addrs, { dev: 'eth2', family: 4, local: '192.168.0.9', prefix: 16 }],
      links: [...facts().links, { index: 4, name: 'eth2', up: true }],
      routeToVia: { dev: 'eth2' },
    });
    expect(buildPlan(profile({ via: '192.168.2.1' }), f, []).config.uplink?.dev).toBe('eth2');
  });

  it('has no uplink without --via', () => {
    const { config, steps } = buildPlan(profile(), facts(), []);
    expect(config.uplink).toBeUndefined();
    expect(steps.some((s) => s.kind === 'uplink-route')).toBe(false);
  });

  it('rejects a gateway that is on no host link', () => {
    const e = catchUserError(() => buildPlan(profile({ via: '10.20.30.1' }), facts(), []));
    expect(e.message).toContain('10.20.30.1');
  });

  it('rejects a gateway that is the host\'s own address', () => {
    catchUserError(() => buildPlan(profile({ via: '192.168.2.10' }), facts(), []));
  });

  it('rejects a gateway that is the host\'s own address on --dev, too', () => {
    // Without --dev this is a UserError; with --dev the plan accepts it and the kernel (6.x) takes
    // `route replace default via <own address>` too, so the uplink silently goes nowhere.
    catchUserError(() => buildPlan(profile({ via: '192.168.2.10', dev: 'eth1' }), facts(), []));
  });

  it('rejects an unknown --dev', () => {
    const e = catchUserError(() => buildPlan(profile({ via: '192.168.2.1', dev: 'eth9' }), facts(), []));
    expect(e.message).toContain('eth9');
  });

  it('rejects a gateway that is not on --dev\'s networks, listing them', () => {
    const e = catchUserError(() => buildPlan(profile({ via: '192.168.2.1', dev: 'eth0' }), facts(), []));
    expect(e.message).toContain('eth0');
    expect(e.message).toContain('192.168.1.50/24');
  });

  it('accepts a gateway on --dev\'s network', () => {
    expect(buildPlan(profile({ via: '192.168.2.1', dev: 'eth1' }), facts(), []).config.uplink?.dev).toBe('eth1');
  });

  it('rejects an uplink interface that is down', () => {
    const f = facts({ links: facts().links.map((l) => (l.name === 'eth1' ? { ...l, up: false } : l)) });
    const e = catchUserError(() => buildPlan(profile({ via: '192.168.2.1' }), f, []));
    expect(e.message).toContain('eth1');
    expect(e.message).toContain('down');
    expect(e.hint).toContain('ip link set eth1 up');
  });

  // Issue 14: up (waitForUplink) of a persistent NAME waits for an uplink that is not usable yet.
  it('up waits for an uplink that is down, missing or without its address; exec does not', () => {
    const down = facts({ links: facts().links.map((l) => (l.name === 'eth1' ? { ...l, up: false } : l)) });
    const p1 = buildPlan(profile({ via: '192.168.2.1' }), down, [], { persistent: true, waitForUplink: 'existing' });
    expect(p1.waiting).toEqual({ dev: 'eth1', reason: 'down' });
    expect(p1.config.uplink).toMatchObject({ via: '192.168.2.1', dev: 'eth1', table: TABLE_BASE + 1 });
    expect(p1.steps.some((s) => s.kind === 'uplink-route')).toBe(true);

    const gone = facts({ links: facts().links.filter((l) => l.name !== 'eth1'), addrs: facts().addrs.filter((a) => a.dev !== 'eth1') });
    const p2 = buildPlan(profile({ via: '192.168.2.1', dev: 'eth1' }), gone, [], { waitForUplink: 'missing-too' });
    expect(p2.waiting).toEqual({ dev: 'eth1', reason: 'missing' });
    // A missing interface is waited for at boot only (from a shell it is likelier a typo).
    catchUserError(() => buildPlan(profile({ via: '192.168.2.1', dev: 'eth1' }), gone, [], { waitForUplink: 'existing' }));
    catchUserError(() => buildPlan(profile({ dev: 'eth1' }), gone, [], { waitForUplink: 'existing' }));
    expect(buildPlan(profile({ dev: 'eth1', dns: ['10.8.0.1'] }), gone, [], { waitForUplink: 'missing-too' }).waiting).toEqual({ dev: 'eth1', reason: 'missing' });
    catchUserError(() => buildPlan(profile({ via: '192.168.2.1', dev: 'eth1' }), gone, []));

    const bare = facts({ addrs: facts().addrs.filter((a) => a.dev !== 'eth1') });
    expect(buildPlan(profile({ via: '192.168.2.1', dev: 'eth1' }), bare, [], { waitForUplink: 'existing' }).waiting).toEqual({ dev: 'eth1', reason: 'no-address' });
    // Without dev nothing says which interface to wait for: refused, with that fix.
    const e = catchUserError(() => buildPlan(profile({ via: '192.168.2.1' }), bare, [], { waitForUplink: 'existing' }));
    expect(e.hint).toContain('dev = "IFACE"');
    // A usable uplink is not waited for.
    expect(buildPlan(profile({ via: '192.168.2.1' }), facts(), [], { waitForUplink: 'existing' }).waiting).toBeUndefined();
  });

  it('routes a --dev-only (point-to-point) uplink without a gateway', () => {
    const f = facts({ links: [...facts().links, { index: 9, name: 'tun0', up: true, kind: 'tun' }] });
    const { config } = buildPlan(profile({ dev: 'tun0', dns: ['10.8.0.1'] }), f, []);
    expect(config.uplink).toMatchObject({ via: undefined, dev: 'tun0', table: 7101 });
    catchUserError(() => buildPlan(profile({ dev: 'tun9', dns: ['10.8.0.1'] }), f, []));
  });

  it('shares the uplink of another namespace with the same gateway and device', () => {
    const up: Uplink = { via: '192.168.2.1', dev: 'eth1', table: 7101, mark: MARK_BASE + 1, pref: RULE_PREF };
    const f = facts({
      routes: [...facts().routes, { dst: 'default', table: 7101, type: 'unicast', dev: 'eth1', gateway: '192.168.2.1' }, { dst: 'default', table: 7101, type: 'unreachable' }],
      rules: [...facts().rules, { priority: 4200, table: 7101, fwmark: MARK_BASE + 1 }],
    });
    const { config } = buildPlan(profile({ name: 'slow2', via: '192.168.2.1' }), f, [other('slow', '10.231.0.0/30', up)]);
    expect(config.uplink).toEqual(up);
  });

  it('uses a new table and mark when the gateway differs', () => {
    const up: Uplink = { via: '192.168.2.1', dev: 'eth1', table: 7101, mark: MARK_BASE + 1, pref: RULE_PREF };
    const { config } = buildPlan(profile({ name: 'other', via: '192.168.2.254' }), facts(), [other('slow', '10.231.0.0/30', up)]);
    expect(config.uplink).toEqual({ via: '192.168.2.254', dev: 'eth1', table: 7102, mark: MARK_BASE + 2, pref: RULE_PREF });
  });

  it('skips table ids used by host routes and rules, and marks used by host rules', () => {
    const f = facts({
      routes: [...facts().routes, { dst: '10.9.0.0/24', table: 7101, type: 'unicast', dev: 'eth0' }],
      rules: [...facts().rules, { priority: 100, table: 7102 }, { priority: 101, table: 51820, fwmark: MARK_BASE + 3 }],
    });
    const { config } = buildPlan(profile({ via: '192.168.2.1' }), f, []);
    expect(config.uplink?.table).toBe(7104);
    expect(config.uplink?.mark).toBe(MARK_BASE + 4);
  });
});

describe('buildPlan: subnet', () => {
  it('takes the first free /30 of 10.231.0.0/16', () => {
    expect(buildPlan(profile(), facts(), []).config.subnet).toBe('10.231.0.0/30');
  });

  it('avoids host addresses', () => {
    const f = facts({ addrs: [...facts().addrs, { dev: 'eth0', family: 4, local: '10.231.0.2', prefix: 32 }] });
    expect(buildPlan(profile(), f, []).config.subnet).toBe('10.231.0.4/30');
  });

  it('avoids the whole network of a host address', () => {
    const f = facts({ addrs: [...facts().addrs, { dev: 'eth0', family: 4, local: '10.231.0.5', prefix: 29 }] });
    expect(buildPlan(profile(), f, []).config.subnet).toBe('10.231.0.8/30');
  });

  it('avoids host routes in any table', () => {
    const f = facts({ routes: [...facts().routes, { dst: '10.231.0.0/29', table: 51820, type: 'unicast', dev: 'wg0' }, { dst: '10.231.0.8', table: 254, type: 'unicast', dev: 'eth0' }] });
    expect(buildPlan(profile(), f, []).config.subnet).toBe('10.231.0.12/30');
  });

  it('avoids other namespaces', () => {
    expect(buildPlan(profile({ name: 'b' }), facts(), [other('a', '10.231.0.0/30'), other('c', '10.231.0.4/30')]).config.subnet).toBe('10.231.0.8/30');
  });

  it('does not treat default routes or IPv6 addresses as taken', () => {
    const f = facts({ addrs: [...facts().addrs, { dev: 'eth0', family: 6, local: '::', prefix: 0 }] });
    expect(buildPlan(profile(), f, []).config.subnet).toBe('10.231.0.0/30');
  });

  it('moves to 172.29.0.0/16 when 10.231.0.0/16 is routed elsewhere', () => {
    const f = facts({ routes: [...facts().routes, { dst: '10.0.0.0/8', table: 254, type: 'unicast', dev: 'eth0', gateway: '192.168.1.2' }] });
    expect(buildPlan(profile(), f, []).config.subnet).toBe('172.29.0.0/30');
  });

  it('rejects when both pools are full', () => {
    const f = facts({ routes: [...facts().routes, { dst: '10.0.0.0/8', table: 254, type: 'unicast', dev: 'eth0' }, { dst: '172.16.0.0/12', table: 254, type: 'unicast', dev: 'eth0' }] });
    const e = catchUserError(() => buildPlan(profile(), f, []));
    expect(e.hint).toContain('--subnet');
  });

  it('uses a free --subnet as given', () => {
    expect(buildPlan(profile({ subnet: '10.77.0.0/24' }), facts(), []).config).toMatchObject({ subnet: '10.77.0.0/24', hostAddress: '10.77.0.1', nsAddress: '10.77.0.2' });
  });

  it('rejects a --subnet that overlaps a route in a non-main table, naming the route and table', () => {
    const f = facts({ routes: [...facts().routes, { dst: '10.9.0.0/16', table: 51820, type: 'unicast', dev: 'wg0' }] });
    const e = catchUserError(() => buildPlan(profile({ subnet: '10.9.4.0/30' }), f, []));
    expect(e.message).toContain('10.9.0.0/16');
    expect(e.message).toContain('wg0');
    expect(e.message).toContain('51820');
  });

  it('rejects a --subnet that overlaps a host address, naming it', () => {
    const e = catchUserError(() => buildPlan(profile({ subnet: '192.168.1.0/30' }), facts(), []));
    expect(e.message).toContain('192.168.1.50/24');
    expect(e.message).toContain('eth0');
  });

  it('rejects a --subnet that overlaps another namespace, naming it', () => {
    const e = catchUserError(() => buildPlan(profile({ name: 'b', subnet: '10.231.0.0/29' }), facts(), [other('a', '10.231.0.4/30')]));
    expect(e.message).toContain('namespace a');
  });
});

describe('buildPlan: DNS', () => {
  it('uses --dns as given', () => {
    const { config } = buildPlan(profile({ via: '192.168.2.1', dns: ['9.9.9.9'] }), facts(), []);
    expect(config.dns).toEqual(['9.9.9.9']);
    expect(config.dnsSource).toBe('option');
  });

  it('uses the --via gateway when the host only has the loopback stub', () => {
    const { config } = buildPlan(profile({ via: '192.168.2.1' }), facts(), []);
    expect(config.dns).toEqual(['192.168.2.1']);
    expect(config.dnsSource).toBe('gateway');
  });

  it('uses the host\'s default gateway without --via when the host only has the loopback stub', () => {
    const { config } = buildPlan(profile(), facts(), []);
    expect(config.dns).toEqual(['192.168.1.1']);
    expect(config.dnsSource).toBe('gateway');
  });

  it('uses the systemd-resolved upstreams before the gateway', () => {
    const { config } = buildPlan(profile({ via: '192.168.2.1' }), facts({ resolvedConf: 'nameserver 192.168.1.1\n' }), []);
    expect(config).toMatchObject({ dns: ['192.168.1.1'], dnsSource: 'systemd-resolved' });
  });

  it('is a UserError when no resolver is usable and there is no gateway', () => {
    const f = facts({ routes: facts().routes.filter((r) => r.dst !== 'default') });
    catchUserError(() => buildPlan(profile(), f, []));
  });
});

describe('buildPlan: name clash', () => {
  it("rejects a foreign (untagged) host interface that has the planned name, and leaves it alone", () => {
    const f = facts({ links: [...facts().links, { index: 7, name: 'nsr-slow', up: false, kind: 'veth' }] });
    const e = catchUserError(() => buildPlan(profile(), f, []));
    expect(e.message).toContain('nsr-slow');
    expect(e.hint).not.toContain('ip link del');
  });
});

describe('iproute2 lines', () => {
  it('vethLines creates the pair, tags it, disables IPv6 link-local before bringing it up', () => {
    const lines = vethLines({ kind: 'veth-add', netns: 'slow', hostIface: 'nsr-slow', nsIface: 'eth0', hostCidr: '10.231.0.1/30', tag: 'nsroute:ns=slow:persistent=0' });
    expect(lines).toEqual([
      'link add name nsr-slow type veth peer name eth0 netns slow',
      'link set dev nsr-slow addrgenmode none',
      'link set dev nsr-slow alias nsroute:ns=slow:persistent=0',
      'address add 10.231.0.1/30 dev nsr-slow',
      'link set dev nsr-slow up',
    ]);
  });

  it('nsConfigLines brings up lo and eth0 and routes by the host end', () => {
    const lines = nsConfigLines({ kind: 'ns-config', netns: 'slow', nsIface: 'eth0', nsCidr: '10.231.0.2/30', gateway: '10.231.0.1' });
    expect(lines).toEqual([
      'link set dev lo up',
      'link set dev eth0 addrgenmode none',
      'address add 10.231.0.2/30 dev eth0',
      'link set dev eth0 up',
      'route add default via 10.231.0.1 dev eth0',
    ]);
    expect(lines.indexOf('link set dev eth0 addrgenmode none')).toBeLessThan(lines.indexOf('link set dev eth0 up'));
  });

  it('uplinkRouteLines: gateway route plus an unreachable fallback in the same table', () => {
    const u: Uplink = { via: '192.168.2.1', dev: 'eth1', table: 7101, mark: MARK_BASE + 1, pref: RULE_PREF };
    expect(uplinkRouteLines(u)).toEqual([
      'route replace default via 192.168.2.1 dev eth1 table 7101',
      'route replace unreachable default metric 4278190080 table 7101',
    ]);
    expect(uplinkRouteLines({ ...u, via: undefined, dev: 'tun0', table: 7102 })).toEqual([
      'route replace default dev tun0 table 7102',
      'route replace unreachable default metric 4278190080 table 7102',
    ]);
  });

  it('uplinkRuleArgs: fwmark in hex, table and pref', () => {
    const u: Uplink = { via: '192.168.2.1', dev: 'eth1', table: 7103, mark: MARK_BASE + 3, pref: RULE_PREF };
    expect(uplinkRuleArgs(u)).toEqual(['fwmark', '0x6e720003', 'lookup', '7103', 'pref', '4200']);
  });
});

describe('stepsFor', () => {
  it('rebuilds exactly the steps buildPlan made, so a recovered journal undoes the same objects', () => {
    for (const persistent of [false, true]) {
      const plan = buildPlan(profile({ via: '192.168.2.1' }), facts(), [], { persistent });
      expect(stepsFor(plan.config, { persistent })).toEqual(plan.steps);
    }
  });

  it('tags the host end with the name, lifetime and uplink', () => {
    const plan = buildPlan(profile({ via: '192.168.2.1' }), facts(), [], { persistent: true });
    const veth = plan.steps.find((s) => s.kind === 'veth-add');
    expect(veth && parseTag(veth.tag)).toEqual({ name: 'slow', persistent: true, uplink: plan.config.uplink });
  });
});

describe('buildPlan: bridge and macvlan modes', () => {
  const withBridge = () => {
    const f = facts();
    f.links.push({ index: 4, name: 'br0', up: true, kind: 'bridge' }, { index: 5, name: 'wlan0', up: true });
    f.wireless = ['wlan0'];
    return f;
  };
  const lan = (over: Partial<Profile>) => profile({ mode: 'bridge', address: '192.168.1.60/24', via: '192.168.1.1', ...over });

  it('joins an existing bridge with the static address, no NAT steps', () => {
    const { config, steps } = buildPlan(lan({ bridge: 'br0' }), withBridge(), []);
    expect(steps.map((s) => s.kind)).toEqual(['netns-add', 'veth-bridge', 'ns-config-lan', 'netns-files']);
    expect(config).toMatchObject({ mode: 'bridge', lan: { bridge: 'br0', address: '192.168.1.60/24', gateway: '192.168.1.1' }, nsAddress: '192.168.1.60', subnet: '192.168.1.0/24' });
    expect(vethBridgeLines(step(steps, 'veth-bridge'))).toContain('link set dev nsr-slow master br0');
    expect(nsConfigLanLines(step(steps, 'ns-config-lan'))).toEqual(expect.arrayContaining(['address add 192.168.1.60/24 dev eth0', 'route add default via 192.168.1.1 dev eth0']));
  });

  it('takes an interface into a new bridge, shared by namespaces on the same interface', () => {
    const first = buildPlan(lan({ uplink: 'eth0' }), withBridge(), []);
    expect(step(first.steps, 'bridge-takeover')).toEqual({ kind: 'bridge-takeover', iface: 'eth0', bridge: 'nsb-eth0' });
    const second = buildPlan(lan({ name: 'other', uplink: 'eth0', address: '192.168.1.61/24' }), withBridge(), [first.config]);
    expect(second.config.lan?.bridge).toBe('nsb-eth0');
  });

  it('refuses to take an interface over when its bridge name exists and no namespace shares it', () => {
    const f = withBridge();
    f.links.push({ index: 6, name: 'nsb-eth0', up: true, kind: 'bridge' });
    const e = catchUserError(() => buildPlan(lan({ uplink: 'eth0' }), f, []));
    expect(e.message).toMatch(/nsb-eth0.*already exists/);
    expect(e.hint).toMatch(/nsroute gc.*--bridge nsb-eth0/);
  });

  it('puts a macvlan on the interface, and with --dhcp runs a client that writes the lease DNS', () => {
    const { config, steps } = buildPlan(profile({ mode: 'macvlan', uplink: 'eth0', dhcp: true }), withBridge(), []);
    expect(steps.map((s) => s.kind)).toEqual(['netns-add', 'macvlan-add', 'ns-config-lan', 'netns-files', 'dhcp-client']);
    expect(step(steps, 'dhcp-client')).toMatchObject({ writeDns: true });
    expect(config).toMatchObject({ dnsSource: 'dhcp', dns: [] });
    expect(step(buildPlan(profile({ mode: 'macvlan', uplink: 'eth0', dhcp: true, dns: ['9.9.9.9'] }), withBridge(), []).steps, 'dhcp-client')).toMatchObject({ writeDns: false });
  });

  it('refuses what cannot work, with the fix', () => {
    const cases: [Partial<Profile>, RegExp][] = [
      [{ bridge: 'nope' }, /bridge nope does not exist/],
      [{ bridge: 'eth0' }, /eth0 is not a bridge/],
      [{ uplink: 'wlan0' }, /wlan0 is a wireless interface/],
      [{ uplink: 'br0' }, /br0 is a bridge already/],
      [{ uplink: 'eth0', address: '192.168.1.50/24' }, /192.168.1.50 is the host's own address/],
    ];
    for (const [over, msg] of cases) expect(catchUserError(() => buildPlan(lan(over), withBridge(), [])).message, JSON.stringify(over)).toMatch(msg);
    expect(catchUserError(() => buildPlan(lan({ uplink: 'wlan0' }), withBridge(), [])).hint).toContain('macvlan');
  });

  it("refuses to take a port out of someone else's bridge, or to put a macvlan on it", () => {
    const f = withBridge();
    f.links.push({ index: 7, name: 'lan1', up: true, master: 'br0' });
    const take = catchUserError(() => buildPlan(lan({ uplink: 'lan1' }), f, []));
    expect(take.message).toBe('lan1 is a port of bridge br0');
    expect(take.hint).toContain('--bridge br0');
    expect(catchUserError(() => buildPlan(profile({ mode: 'macvlan', uplink: 'lan1', dhcp: true }), f, [])).message).toBe('lan1 is a port of bridge br0');
    // A port of nsroute's own bridge for that interface is the shared takeover: fine.
    const first = buildPlan(lan({ uplink: 'eth0' }), withBridge(), []);
    const g = withBridge();
    g.links.find((l) => l.name === 'eth0')!.master = 'nsb-eth0';
    g.links.push({ index: 8, name: 'nsb-eth0', up: true, kind: 'bridge' });
    expect(buildPlan(lan({ name: 'other', uplink: 'eth0', address: '192.168.1.61/24' }), g, [first.config]).config.lan?.bridge).toBe('nsb-eth0');
  });
});

// Issue 10, finding 7: interfaces and gateways that cannot work are refused by the planner,
// before the first change, instead of by the kernel's error or not at all.
describe('buildPlan: uplinks that cannot work', () => {
  const tagged = (name: string, over: Partial<LinkFact> = {}): LinkFact => ({ index: 20, name: `nsr-${name}`, up: true, kind: 'veth', alias: `nsroute:ns=${name}:persistent=1`, ...over });
  const withOther = () => {
    const f = facts();
    f.links.push(tagged('office'));
    f.addrs.push({ dev: 'nsr-office', family: 4, local: '10.231.0.1', prefix: 30 });
    return f;
  };

  it.each([
    ['192.168.2.0', /network address of 192\.168\.2\.0\/24 on eth1/],
    ['192.168.2.255', /broadcast address of 192\.168\.2\.0\/24 on eth1/],
  ])('refuses --via %s (with and without --dev)', (via, says) => {
    expect(catchUserError(() => buildPlan(profile({ via }), facts(), [])).message).toMatch(says);
    expect(catchUserError(() => buildPlan(profile({ via, dev: 'eth1' }), facts(), [])).message).toMatch(says);
  });

  it('refuses --dev lo, alone or with --via (also a loopback device by its flag)', () => {
    expect(catchUserError(() => buildPlan(profile({ dev: 'lo' }), facts(), [])).message).toMatch(/lo is the loopback/);
    const f = facts();
    f.links.push({ index: 30, name: 'lo2', up: true, loopback: true });
    f.addrs.push({ dev: 'lo2', family: 4, local: '10.50.0.1', prefix: 24 });
    expect(catchUserError(() => buildPlan(profile({ dev: 'lo2' }), f, [])).message).toMatch(/loopback/);
    expect(catchUserError(() => buildPlan(profile({ dev: 'lo2', via: '10.50.0.2' }), f, [])).message).toMatch(/loopback/);
    // Without --dev, a gateway only a loopback device reaches is no uplink either.
    expect(catchUserError(() => buildPlan(profile({ via: '10.50.0.2' }), f, [])).message).toMatch(/not reachable/);
  });

  it("refuses --dev naming another namespace's veth (by its owner tag, or by its state)", () => {
    const e = catchUserError(() => buildPlan(profile({ dev: 'nsr-office' }), withOther(), []));
    expect(e.message).toMatch(/nsr-office is nsroute's own interface for namespace office/);
    expect(catchUserError(() => buildPlan(profile({ dev: 'nsr-office', via: '10.231.0.2' }), withOther(), [])).message).toMatch(/namespace office/);
    // Auto-chosen: a gateway behind another namespace's veth is not reachable from the host.
    expect(catchUserError(() => buildPlan(profile({ via: '10.231.0.2' }), withOther(), [])).message).toMatch(/not reachable/);
    const f = facts();
    f.links.push({ index: 21, name: 'nsr-office', up: true, kind: 'veth' }); // tag lost, state knows
    expect(catchUserError(() => buildPlan(profile({ dev: 'nsr-office' }), f, [other('office', '10.231.0.0/30')])).message).toMatch(/namespace office/);
  });

  it('refuses --uplink lo and nsroute interfaces in bridge and macvlan modes', () => {
    const f = withOther();
    for (const mode of ['bridge', 'macvlan'] as const) {
      const lan = { mode, address: '192.168.1.60/24', via: '192.168.1.1' };
      expect(catchUserError(() => buildPlan(profile({ ...lan, uplink: 'lo' }), f, [])).message).toMatch(/loopback/);
      expect(catchUserError(() => buildPlan(profile({ ...lan, uplink: 'nsr-office' }), f, [])).message).toMatch(/namespace office/);
    }
  });

  it("refuses --bridge (and a macvlan on) the bridge another namespace took its uplink into, hinting --uplink", () => {
    const f = facts();
    f.links.push({ index: 40, name: 'nsb-eth0', up: true, kind: 'bridge' });
    const owner: NamespaceConfig = { ...other('lanns', '192.168.1.0/24'), mode: 'bridge', lan: { bridge: 'nsb-eth0', takeover: 'eth0', address: '192.168.1.61/24', gateway: '192.168.1.1' } };
    const lan = { address: '192.168.1.60/24', via: '192.168.1.1' };
    const e = catchUserError(() => buildPlan(profile({ mode: 'bridge', bridge: 'nsb-eth0', ...lan }), f, [owner]));
    expect(e.message).toMatch(/namespace lanns/);
    expect(e.hint).toContain('--uplink eth0');
    expect(catchUserError(() => buildPlan(profile({ mode: 'macvlan', uplink: 'nsb-eth0', ...lan }), f, [owner])).hint).toContain('--uplink eth0');
    // A NAT namespace may still leave by that bridge: the host's own address moved onto it.
    const g = facts({ addrs: facts().addrs.map((a) => (a.dev === 'eth0' ? { ...a, dev: 'nsb-eth0' } : a)) });
    g.links.push({ index: 40, name: 'nsb-eth0', up: true, kind: 'bridge' });
    expect(buildPlan(profile({ via: '192.168.1.1' }), g, [owner]).config.uplink?.dev).toBe('nsb-eth0');
  });
});
