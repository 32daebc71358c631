import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PROBE_NAME,
  evaluate,
  masqueradeSource,
  parseDnsProbe,
  parseNftTable,
  parseRouteLookup,
  reportText,
  type CheckFacts,
  type CheckResult,
  type CommandOutput,
  type NetnsFile,
} from '../../../src/check/evaluate.js';
import { parseAddrs } from '../../../src/net/iproute-json.js';
import { renderGaiConf, renderNsswitchConf, renderResolvConf } from '../../../src/net/resolv.js';
import type { NamespaceConfig } from '../../../src/plan/types.js';

// Outputs recorded with iproute2 6.1 / nftables 1.0.6 in the test world (test/world), for
// `nsroute up slow --via 10.99.2.1 --dns 198.18.0.53`; the commands are the ones
// src/check/gather.ts runs. Failures are built from them the way the kernel shows them.

const ok = (stdout: string): CommandOutput => ({ exitCode: 0, stdout, stderr: '' });
const fail = (stderr: string, exitCode = 2): CommandOutput => ({ exitCode, stdout: '', stderr });

const UPLINK = { via: '10.99.2.1', dev: 'ups', table: 7101, mark: 0x6e720001, pref: 4200 };

function config(over: Partial<NamespaceConfig> = {}): NamespaceConfig {
  return {
    name: 'slow',
    mode: 'nat',
    hostIface: 'nsr-slow',
    nsIface: 'eth0',
    subnet: '10.231.0.0/30',
    hostAddress: '10.231.0.1',
    nsAddress: '10.231.0.2',
    prefix: 30,
    uplink: { ...UPLINK },
    dns: ['198.18.0.53'],
    dnsSource: 'option',
    ...over,
  };
}

// ip -n slow -j route get 198.51.100.7
const NS_ROUTE = '[{"dst":"198.51.100.7","gateway":"10.231.0.1","dev":"eth0","prefsrc":"10.231.0.2","flags":[],"uid":0,"cache":[]}]';
// ip -j route get 198.51.100.7 from 10.231.0.2 iif nsr-slow mark 1852964865
const HOST_ROUTE =
  '[{"dst":"198.51.100.7","from":"10.231.0.2","gateway":"10.99.2.1","dev":"ups","table":"7101","flags":[],"mark":1852964865,"cache":[],"iif":"nsr-slow"}]';
// The same when the packet ends up on the host's default route (no rule, or no mark).
const HOST_ROUTE_FAST = '[{"dst":"198.51.100.7","from":"10.231.0.2","gateway":"10.99.1.1","dev":"upf","flags":[],"mark":1852964865,"cache":[],"iif":"nsr-slow"}]';
// ip -j route get 198.51.100.7 from 10.231.0.2 iif nsr-slow (no mark): the fail-closed rule
// (plan/guard.ts) answers; without it the main table would.
const UNMARKED_BLOCKED = fail('RTNETLINK answers: Network is unreachable');
const UNMARKED_MAIN = ok('[{"dst":"198.51.100.7","from":"10.231.0.2","gateway":"10.99.1.1","dev":"upf","flags":[],"cache":[],"iif":"nsr-slow"}]');
// ip -j -4 addr show (trimmed to the fields parseAddrs reads)
const HOST_ADDRS = JSON.stringify([
  { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
  { ifname: 'upf', addr_info: [{ family: 'inet', local: '10.99.1.2', prefixlen: 24 }] },
  { ifname: 'ups', addr_info: [{ family: 'inet', local: '10.99.2.2', prefixlen: 24 }] },
  { ifname: 'nsr-slow', addr_info: [{ family: 'inet', local: '10.231.0.1', prefixlen: 30 }] },
]);
// ip -j -N route show table 7101
const UPLINK_TABLE =
  '[{"dst":"default","gateway":"10.99.2.1","dev":"ups","flags":[]},{"type":"7","dst":"default","metric":4278190080,"flags":[]},{"dst":"10.231.0.0/30","dev":"nsr-slow","scope":"253","flags":[]}]';
// The same after `ip link set ups down`: the kernel drops the routes through ups.
const UPLINK_TABLE_DOWN = '[{"type":"7","dst":"default","metric":4278190080,"flags":[]},{"dst":"10.231.0.0/30","dev":"nsr-slow","scope":"253","flags":[]}]';
// ip -j -N rule show
const RULES =
  '[{"priority":0,"src":"all","table":"255"},{"priority":4200,"src":"all","fwmark":"0x6e720001","table":"7101"},{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}]';
const RULES_NO_MARK = '[{"priority":0,"src":"all","table":"255"},{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}]';

// nft -j list table inet nsroute
function nftJson(o: { ifaces?: string[]; nets?: unknown[]; marks?: [string, number][]; rules?: boolean } = {}): string {
  const ifaces = o.ifaces ?? ['nsr-slow'];
  const nets = o.nets ?? [{ prefix: { addr: '10.231.0.0', len: 30 } }];
  const marks = o.marks ?? [['nsr-slow', 1852964865]];
  const elem = (xs: unknown[]) => (xs.length > 0 ? { elem: xs } : {});
  const items: unknown[] = [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'nsroute', handle: 2 } },
    { set: { family: 'inet', name: 'ns_ifaces', table: 'nsroute', type: 'ifname', handle: 3, ...elem(ifaces) } },
    { set: { family: 'inet', name: 'ns_nets4', table: 'nsroute', type: 'ipv4_addr', handle: 4, flags: ['interval'], ...elem(nets) } },
    { set: { family: 'inet', name: 'ns_nets6', table: 'nsroute', type: 'ipv6_addr', handle: 5, flags: ['interval'] } },
    { map: { family: 'inet', name: 'uplink_mark', table: 'nsroute', type: 'ifname', handle: 6, map: 'mark', ...elem(marks) } },
    { chain: { family: 'inet', table: 'nsroute', name: 'prerouting', handle: 1, type: 'filter', hook: 'prerouting', prio: -150, policy: 'accept' } },
    { chain: { family: 'inet', table: 'nsroute', name: 'postrouting', handle: 2, type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } },
  ];
  if (o.rules !== false) {
    items.push(
      {
        rule: {
          family: 'inet',
          table: 'nsroute',
          chain: 'prerouting',
          handle: 7,
          expr: [
            { mangle: { key: { meta: { key: 'mark' } }, value: { map: { key: { meta: { key: 'iifname' } }, data: '@uplink_mark' } } } },
            { mangle: { key: { ct: { key: 'mark' } }, value: { meta: { key: 'mark' } } } },
          ],
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'nsroute',
          chain: 'postrouting',
          handle: 9,
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@ns_nets4' } },
            { match: { op: '!=', left: { meta: { key: 'oifname' } }, right: '@ns_ifaces' } },
            { masquerade: null },
          ],
        },
      },
    );
  }
  return JSON.stringify({ nftables: items });
}
const NFT_MISSING = fail('Error: No such file or directory\nlist table inet nsroute\n                 ^^^^^^^', 1);

// ip -n slow -6 -j addr show, with IPv6 off: only ::1 on lo (eth0 has addrgenmode none).
const NS_ADDRS6 = JSON.stringify([{ ifname: 'lo', addr_info: [{ family: 'inet6', local: '::1', prefixlen: 128, scope: 'host' }] }]);
const NS_ROUTE6_NONE = fail('RTNETLINK answers: Network is unreachable');

function files(name = 'slow', dns = ['198.18.0.53']): Record<NetnsFile, string> {
  return {
    'resolv.conf': renderResolvConf(name, dns),
    'gai.conf': renderGaiConf(name),
    'nsswitch.conf': renderNsswitchConf(name, 'passwd: files\nhosts: files resolve [!UNAVAIL=return] dns myhostname\n'),
  };
}

function healthy(over: Partial<CheckFacts> = {}): CheckFacts {
  const f = files();
  return {
    config: config(),
    probeName: DEFAULT_PROBE_NAME,
    nsRoute: ok(NS_ROUTE),
    hostRoute: ok(HOST_ROUTE),
    hostRouteUnmarked: UNMARKED_BLOCKED,
    hostAddrs: ok(HOST_ADDRS),
    uplinkTable: ok(UPLINK_TABLE),
    rules: ok(RULES),
    nft: ok(nftJson()),
    dnsProbe: ok('[{"server":"198.18.0.53","result":"EREFUSED"}]'),
    nsAddrs6: ok(NS_ADDRS6),
    nsRoute6: NS_ROUTE6_NONE,
    netnsFiles: { ...f },
    views: { 'resolv.conf': { text: f['resolv.conf'] }, 'gai.conf': { text: f['gai.conf'] }, 'nsswitch.conf': { text: f['nsswitch.conf'] } },
    ...over,
  };
}

function check<I extends CheckResult['id']>(facts: CheckFacts, id: I): Extract<CheckResult, { id: I }> {
  const c = evaluate(facts).checks.find((x) => x.id === id);
  if (!c) throw new Error(`no ${id} check`);
  return c as Extract<CheckResult, { id: I }>;
}

// Every check but the given ones passed.
function onlyFailing(facts: CheckFacts): string[] {
  return evaluate(facts)
    .checks.filter((c) => !c.ok)
    .map((c) => c.id);
}

describe('a healthy namespace', () => {
  it('passes every check and says where traffic goes', () => {
    const r = evaluate(healthy());
    expect(r.ok).toBe(true);
    expect(r.leak).toBe(false);
    expect(r.checks.map((c) => c.id)).toEqual(['route', 'nat', 'dns', 'nsswitch', 'ipv6', 'files', 'firewall']);
    const route = check(healthy(), 'route');
    expect(route.detail).toBe('via 10.99.2.1 dev ups, source 10.99.2.2');
    expect(route.inside).toEqual({ dev: 'eth0', gateway: '10.231.0.1', source: '10.231.0.2' });
    expect(route.host).toEqual({ dev: 'ups', gateway: '10.99.2.1', source: '10.99.2.2', table: 7101 });
    expect(route.killSwitch).toEqual({ table: 7101, uplinkRoute: true, fallback: true, rule: true });
    expect(route).toMatchObject({ marked: true, failClosed: true });
    expect(check(healthy(), 'dns').servers).toEqual([{ server: '198.18.0.53', answered: true, result: 'EREFUSED' }]);
    expect(check(healthy(), 'nsswitch').detail).toBe('hosts: files dns myhostname');
    expect(check(healthy(), 'ipv6').detail).toBe('IPv6 cannot leave; programs fall back to IPv4 at once');
    expect(check(healthy(), 'files').files.every((x) => x.present && x.ours && x.mounted)).toBe(true);
  });

  it('prints one line per check and a summary', () => {
    const text = reportText(evaluate(healthy()));
    expect(text.split('\n')).toEqual([
      'ok   route: via 10.99.2.1 dev ups, source 10.99.2.2',
      'ok   nat: masquerade of 10.231.0.0/30 from nsr-slow, mark 0x6e720001',
      'ok   dns: 198.18.0.53 answered (EREFUSED)',
      'ok   nsswitch: hosts: files dns myhostname',
      'ok   ipv6: IPv6 cannot leave; programs fall back to IPv4 at once',
      'ok   files: resolv.conf, gai.conf, nsswitch.conf in place',
      "ok   firewall: no other firewall drops the namespace's forwarded traffic",
      'slow: all 7 checks passed',
    ]);
  });

  it('without --via follows the host routing and checks no uplink table', () => {
    const { uplink: _u, ...noUplink } = config();
    const facts = healthy({
      config: noUplink,
      hostRoute: ok('[{"dst":"198.51.100.7","from":"10.231.0.2","gateway":"10.99.1.1","dev":"upf","flags":[],"mark":1852964864,"cache":[],"iif":"nsr-slow"}]'),
      // No fail-closed rule covers it (plan/guard.ts: rp_filter): unmarked, the main table.
      hostRouteUnmarked: UNMARKED_MAIN,
      nft: ok(nftJson({ marks: [['nsr-slow', 0x6e720000]] })),
    });
    delete facts.uplinkTable;
    delete facts.rules;
    expect(onlyFailing(facts)).toEqual([]);
    const route = check(facts, 'route');
    expect(route.detail).toBe('via 10.99.1.1 dev upf, source 10.99.1.2 (host routing)');
    expect(route.killSwitch).toBeNull();
    expect(check(facts, 'nat').detail).toBe('masquerade of 10.231.0.0/30 from nsr-slow, mark 0x6e720000 (host routing)');
    expect(route).toMatchObject({ marked: true, failClosed: null });
    // Without its mark it still goes by the host's routes, but unmasqueraded: broken, no leak
    // (host routing is its path).
    const unmarked = check({ ...facts, nft: ok(nftJson({ marks: [] })) }, 'route');
    expect(unmarked).toMatchObject({ ok: false, leak: false, marked: false, failClosed: null });
    expect(unmarked.detail).toContain('unmasqueraded');
  });

  it('queries and expects only the first 3 name servers (what resolv.conf holds)', () => {
    const dns = ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'];
    const f = files('slow', dns);
    const facts = healthy({
      config: config({ dns }),
      netnsFiles: { ...f },
      views: { 'resolv.conf': { text: f['resolv.conf'] }, 'gai.conf': { text: f['gai.conf'] }, 'nsswitch.conf': { text: f['nsswitch.conf'] } },
      dnsProbe: ok(JSON.stringify(dns.slice(0, 3).map((server) => ({ server, result: 'ENOTFOUND' })))),
    });
    const c = check(facts, 'dns');
    expect(c.ok, c.detail).toBe(true);
    expect(c.expected).toEqual(dns.slice(0, 3));
  });
});

describe('route', () => {
  it('fails as a leak when the host sends the traffic by another device', () => {
    const c = check(healthy({ hostRoute: ok(HOST_ROUTE_FAST) }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.detail).toContain('leaves via 10.99.1.1 dev upf, not the uplink via 10.99.2.1 dev ups');
    expect(c.host).toEqual({ dev: 'upf', gateway: '10.99.1.1', source: '10.99.1.2', table: null });
  });

  it('fails when the right device is used with another gateway', () => {
    const c = check(healthy({ hostRoute: ok(HOST_ROUTE.replace('"gateway":"10.99.2.1"', '"gateway":"10.99.2.9"')) }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.detail).toContain('via 10.99.2.9 dev ups, not the uplink via 10.99.2.1 dev ups');
  });

  it('fails without the unreachable fallback in the uplink table', () => {
    const table = '[{"dst":"default","gateway":"10.99.2.1","dev":"ups","flags":[]},{"dst":"10.231.0.0/30","dev":"nsr-slow","scope":"253","flags":[]}]';
    const c = check(healthy({ uplinkTable: ok(table) }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(false);
    expect(c.killSwitch).toEqual({ table: 7101, uplinkRoute: true, fallback: false, rule: true });
    expect(c.detail).toContain('table 7101 lacks its unreachable fallback');
  });

  it('does not take an unreachable route with another metric for the fallback', () => {
    const table = UPLINK_TABLE.replace('4278190080', '100');
    expect(check(healthy({ uplinkTable: ok(table) }), 'route').killSwitch?.fallback).toBe(false);
  });

  it('fails without the fwmark rule: blocked by the fail-closed rule, nothing leaks', () => {
    const c = check(healthy({ rules: ok(RULES_NO_MARK), hostRoute: fail('RTNETLINK answers: Network is unreachable') }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(false);
    expect(c.detail).toContain('the rule fwmark 0x6e720001 lookup 7101 pref 4200 is missing: traffic is blocked (kill switch), nothing leaks');
  });

  it('fails without the fwmark rule and without the fail-closed rule (the main table: a leak)', () => {
    const c = check(healthy({ rules: ok(RULES_NO_MARK), hostRoute: ok(HOST_ROUTE_FAST), hostRouteUnmarked: UNMARKED_MAIN }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.killSwitch?.rule).toBe(false);
    expect(c.detail).toContain('the rule fwmark 0x6e720001 lookup 7101 pref 4200 is missing');
  });

  it('a rule with the right mark but another table or priority does not count', () => {
    const rules = RULES.replace('"priority":4200', '"priority":4300');
    expect(check(healthy({ rules: ok(rules) }), 'route').killSwitch?.rule).toBe(false);
    expect(check(healthy({ rules: ok(RULES.replace('"table":"7101"', '"table":"7102"')) }), 'route').ok).toBe(false);
  });

  it('an uplink without its route is blocked by the kill switch: broken, nothing leaks', () => {
    const c = check(healthy({ uplinkTable: ok(UPLINK_TABLE_DOWN), hostRoute: fail('RTNETLINK answers: No route to host') }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(false);
    expect(c.detail).toMatch(/^uplink ups has no route in table 7101: traffic is blocked \(kill switch\), nothing leaks/);
    expect(c.killSwitch).toEqual({ table: 7101, uplinkRoute: false, fallback: true, rule: true });
    expect(c.host).toEqual({ dev: null, gateway: null, source: null, table: null });
  });

  it('an uplink without its route and without the fallback leaks to the main table', () => {
    const table = '[{"dst":"10.231.0.0/30","dev":"nsr-slow","scope":"253","flags":[]}]';
    const c = check(healthy({ uplinkTable: ok(table), hostRoute: ok(HOST_ROUTE_FAST), hostRouteUnmarked: UNMARKED_MAIN }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.detail).toContain('not the uplink');
    expect(c.detail).toContain('lacks its unreachable fallback');
  });

  // Issue 10, finding 1: after `nft flush ruleset` check said "ok route", because it asked for
  // the route with the mark set. The kernel routes what it gets: no mark.
  it('a flushed firewall with the fail-closed rule: blocked, nothing leaks, and said so', () => {
    const c = check(healthy({ nft: NFT_MISSING }), 'route');
    expect(c).toMatchObject({ ok: false, leak: false, marked: false, failClosed: true });
    expect(c.detail).toMatch(/^the namespace's packets get no mark from nsroute's firewall table .*blocked by the fail-closed rule \(kill switch\), nothing leaks/);
    expect(c.host).toEqual({ dev: null, gateway: null, source: null, table: null });
  });

  it('a flushed firewall without the fail-closed rule: a leak by the main table', () => {
    const c = check(healthy({ nft: NFT_MISSING, hostRouteUnmarked: UNMARKED_MAIN }), 'route');
    expect(c).toMatchObject({ ok: false, leak: true, marked: false, failClosed: false });
    expect(c.detail).toContain('no fail-closed rule stops them: they leave via 10.99.1.1 dev upf unmasqueraded');
    expect(c.host).toMatchObject({ dev: 'upf', gateway: '10.99.1.1' });
    expect(check(healthy({ nft: NFT_MISSING, hostRouteUnmarked: UNMARKED_MAIN }), 'nat').leak).toBe(true);
  });

  it('the mark rule flushed but the sets kept: the packets are unmarked too', () => {
    const c = check(healthy({ nft: ok(nftJson({ rules: false })), hostRouteUnmarked: UNMARKED_MAIN }), 'route');
    expect(c).toMatchObject({ ok: false, leak: true, marked: false });
  });

  it('everything marked but the fail-closed rule gone: fails without a leak, and says what would happen', () => {
    const c = check(healthy({ hostRouteUnmarked: UNMARKED_MAIN }), 'route');
    expect(c).toMatchObject({ ok: false, leak: false, marked: true, failClosed: false });
    expect(c.detail).toMatch(/^the fail-closed rule .* is missing: if the firewall were flushed, traffic would leave dev upf/);
  });

  it('an IPv6 namespace without its IPv6 fail-closed rule fails', () => {
    const nat6 = config({ ipv6: 'nat', subnet6: 'fd6e:7372:ae7:0::/64', hostAddress6: 'fd6e:7372:ae7:0::1', nsAddress6: 'fd6e:7372:ae7:0::2' });
    const addrs6 = JSON.stringify([{ ifname: 'eth0', addr_info: [{ family: 'inet6', local: 'fd6e:7372:ae7:0::2', prefixlen: 64, scope: 'global' }] }]);
    const inside6 = ok('[{"dst":"2001:db8::7","gateway":"fe80::1","dev":"eth0","prefsrc":"fd6e:7372:ae7:0::2","flags":[]}]');
    const host6 = ok('[{"dst":"2001:db8::7","from":"fd6e:7372:ae7:0::2","gateway":"fd99:2::1","dev":"ups","flags":[]}]');
    const base = { config: nat6, nsAddrs6: ok(addrs6), nsRoute6: inside6, hostRoute6: host6 };
    expect(check(healthy({ ...base, hostRoute6Unmarked: fail('RTNETLINK answers: Network is unreachable') }), 'ipv6').ok).toBe(true);
    const c = check(healthy({ ...base, hostRoute6Unmarked: ok('[{"dst":"2001:db8::7","gateway":"fd99:1::1","dev":"upf","flags":[]}]') }), 'ipv6');
    expect(c.ok).toBe(false);
    expect(c.detail).toContain('the IPv6 fail-closed rule is missing: without nsroute\'s mark the namespace\'s IPv6 would leave dev upf');
  });

  it('fails when the namespace lost its default route', () => {
    const c = check(healthy({ nsRoute: fail('RTNETLINK answers: Network is unreachable') }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(false);
    expect(c.detail).toContain('inside the namespace 198.51.100.7 has no route (Network is unreachable)');
  });

  it('fails as a leak when the namespace routes by another interface', () => {
    const other = '[{"dst":"198.51.100.7","gateway":"192.168.7.1","dev":"wlan1","prefsrc":"192.168.7.5","flags":[],"uid":0,"cache":[]}]';
    const c = check(healthy({ nsRoute: ok(other) }), 'route');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.inside).toEqual({ dev: 'wlan1', gateway: '192.168.7.1', source: '192.168.7.5' });
  });

  it('the far side sees the route prefsrc, else the address on the gateway network', () => {
    const addrs = parseAddrs([{ ifname: 'eth1', addr_info: [{ family: 'inet', local: '172.16.0.5', prefixlen: 24 }, { family: 'inet', local: '192.168.2.10', prefixlen: 24 }] }]);
    expect(masqueradeSource({ dev: 'eth1', gateway: '192.168.2.1', prefsrc: null, table: null, type: 'unicast' }, addrs)).toBe('192.168.2.10');
    expect(masqueradeSource({ dev: 'eth1', gateway: null, prefsrc: null, table: null, type: 'unicast' }, addrs)).toBe('172.16.0.5');
    expect(masqueradeSource({ dev: 'eth1', gateway: '192.168.2.1', prefsrc: '172.16.0.5', table: null, type: 'unicast' }, addrs)).toBe('172.16.0.5');
    expect(masqueradeSource({ dev: 'tun0', gateway: null, prefsrc: null, table: null, type: 'unicast' }, addrs)).toBeNull();
  });

  it('parses route lookups and rejects failed or empty ones', () => {
    expect(parseRouteLookup(ok(HOST_ROUTE))).toEqual({ dev: 'ups', gateway: '10.99.2.1', prefsrc: null, table: 7101, type: 'unicast' });
    expect(parseRouteLookup(fail('RTNETLINK answers: No route to host'))).toBeUndefined();
    expect(parseRouteLookup(ok(''))).toBeUndefined();
    expect(parseRouteLookup(ok('not json'))).toBeUndefined();
  });
});

describe('nat', () => {
  it('fails when the table is gone, with the way to restore it', () => {
    const c = check(healthy({ nft: NFT_MISSING }), 'nat');
    expect(c.ok).toBe(false);
    expect(c.table).toBe(false);
    expect(c.leak).toBe(false); // nothing is marked, and the fail-closed rule blocks it
    expect(c.detail).toContain('the firewall was flushed or reloaded by another tool; traffic is blocked until then, nothing leaks');
    expect(c.detail).toContain('nsroute gc');
    // Without the fail-closed rule, unmarked packets follow the host's default route.
    expect(check(healthy({ nft: NFT_MISSING, hostRouteUnmarked: UNMARKED_MAIN }), 'nat').leak).toBe(true);
  });

  it('a missing table without an uplink is broken but not a leak', () => {
    const { uplink: _u, ...noUplink } = config();
    expect(check(healthy({ config: noUplink, nft: NFT_MISSING }), 'nat').leak).toBe(false);
  });

  it('names each missing element', () => {
    const c = check(healthy({ nft: ok(nftJson({ ifaces: ['nsr-other'], nets: ['10.231.0.8/30'], marks: [['nsr-slow', 0x6e720002]] })), hostRouteUnmarked: UNMARKED_MAIN }), 'nat');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.missing).toEqual(['ns_ifaces nsr-slow', 'ns_nets4 10.231.0.0/30', 'uplink_mark nsr-slow : 0x6e720001 (is 0x6e720002)']);
  });

  it('fails when the rules were flushed but the sets remain', () => {
    const c = check(healthy({ nft: ok(nftJson({ rules: false })) }), 'nat');
    expect(c.ok).toBe(false);
    expect(c.missing).toEqual(['masquerade rule', 'mark rule']);
  });

  it('reads every element form nft -j prints', () => {
    const t = parseNftTable(ok(nftJson({ nets: ['10.231.0.9', { range: ['10.231.0.0', '10.231.0.3'] }, { prefix: { addr: '172.29.0.0', len: 30 } }] })));
    expect(t?.sets.get('ns_nets4')).toEqual(['10.231.0.9', '10.231.0.0-10.231.0.3', '172.29.0.0/30']);
    expect(t?.maps.get('uplink_mark')?.get('nsr-slow')).toBe(0x6e720001);
    expect(parseNftTable(NFT_MISSING)).toBeUndefined();
    expect(parseNftTable(ok('{"nftables": [{"metainfo": {}}]}'))).toBeUndefined();
  });
});

describe('dns', () => {
  it('fails when the namespace sees another resolv.conf (a leak: lookups go elsewhere)', () => {
    const facts = healthy();
    facts.views['resolv.conf'] = { text: 'nameserver 10.99.1.1\n' };
    const c = check(facts, 'dns');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.nameservers).toEqual(['10.99.1.1']);
    expect(c.detail).toContain('the namespace asks 10.99.1.1, not 198.18.0.53');
    expect(onlyFailing(facts)).toEqual(['dns', 'files']);
  });

  it('fails on a loopback name server', () => {
    const facts = healthy();
    facts.views['resolv.conf'] = { text: '# Written by nsroute\nnameserver 127.0.0.53\nnameserver 198.18.0.53\n' };
    const c = check(facts, 'dns');
    expect(c.ok).toBe(false);
    expect(c.detail).toContain('loopback name server 127.0.0.53');
  });

  it('fails when the order differs', () => {
    const dns = ['192.0.2.1', '192.0.2.2'];
    const facts = healthy({ config: config({ dns }), dnsProbe: ok('[{"server":"192.0.2.1","result":"answer"},{"server":"192.0.2.2","result":"answer"}]') });
    facts.views['resolv.conf'] = { text: 'nameserver 192.0.2.2\nnameserver 192.0.2.1\n' };
    const c = check(facts, 'dns');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(false);
  });

  it('fails when a server does not answer, and says which', () => {
    const dns = ['198.18.0.53', '192.0.2.99', '192.0.2.98'];
    const facts = healthy({
      config: config({ dns }),
      dnsProbe: ok('[{"server":"198.18.0.53","result":"ENOTFOUND"},{"server":"192.0.2.99","result":"ETIMEOUT"},{"server":"192.0.2.98","result":"ECONNREFUSED"}]'),
    });
    facts.views['resolv.conf'] = { text: renderResolvConf('slow', dns) };
    const c = check(facts, 'dns');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(false);
    expect(c.servers).toEqual([
      { server: '198.18.0.53', answered: true, result: 'ENOTFOUND' },
      { server: '192.0.2.99', answered: false, result: 'ETIMEOUT' },
      { server: '192.0.2.98', answered: false, result: 'ECONNREFUSED' },
    ]);
    expect(c.detail).toContain('192.0.2.99 (ETIMEOUT), 192.0.2.98 (ECONNREFUSED) did not answer');
  });

  it('counts every kind of reply as an answer, and a crashed probe as none', () => {
    const servers = ['a', 'b', 'c', 'd', 'e', 'f'];
    const results = ['answer', 'ENOTFOUND', 'ENODATA', 'EREFUSED', 'ESERVFAIL', 'ECANCELLED'];
    const parsed = parseDnsProbe(ok(JSON.stringify(servers.map((server, i) => ({ server, result: results[i] })))), servers);
    expect(parsed.map((p) => p.answered)).toEqual([true, true, true, true, true, false]);
    expect(parseDnsProbe(ok('[{"server":"a","result":"answer","addresses":["198.18.1.1"]}]'), ['a'])).toEqual([
      { server: 'a', answered: true, result: 'answer', addresses: ['198.18.1.1'] },
    ]);
    const crashed = parseDnsProbe(fail('setns: Invalid argument', 255), ['198.18.0.53']);
    expect(crashed).toEqual([{ server: '198.18.0.53', answered: false, result: 'probe failed: setns: Invalid argument' }]);
  });
});

describe('nsswitch', () => {
  const withHosts = (hosts: string, own = true): CheckFacts => {
    const facts = healthy();
    const text = `passwd: files\n${hosts}\n`;
    facts.views['nsswitch.conf'] = { text };
    if (own) facts.netnsFiles['nsswitch.conf'] = text;
    else delete facts.netnsFiles['nsswitch.conf'];
    return facts;
  };

  it('fails as a leak when our file asks resolve, mdns or mymachines', () => {
    for (const src of ['resolve', 'mdns4_minimal', 'mdns', 'mymachines']) {
      const c = check(withHosts(`hosts: files ${src} [NOTFOUND=return] dns`), 'nsswitch');
      expect(c.ok, src).toBe(false);
      expect(c.leak, src).toBe(true);
      expect(c.detail).toContain(src);
    }
  });

  it('fails when our file lacks dns', () => {
    const c = check(withHosts('hosts: files myhostname'), 'nsswitch');
    expect(c.ok).toBe(false);
    expect(c.detail).toContain('lacks dns');
  });

  it('without our own file, fails only when the host file sends lookups to resolve', () => {
    const c = check(withHosts('hosts:  files resolve [!UNAVAIL=return] dns', false), 'nsswitch');
    expect(c.ok).toBe(false);
    expect(c.own).toBe(false);
    expect(c.detail).toContain('systemd-resolved');
    const mdns = check(withHosts('hosts: files mdns4_minimal [NOTFOUND=return] dns', false), 'nsswitch');
    expect(mdns.ok, mdns.detail).toBe(true);
    expect(mdns.detail).toBe("hosts: files mdns4_minimal [NOTFOUND=return] dns (the host's file)");
  });

  it('a [resolve=...] action is not a source', () => {
    expect(check(withHosts('hosts: files dns [!UNAVAIL=return]'), 'nsswitch').ok).toBe(true);
  });
});

describe('ipv6', () => {
  it('off: fails as a leak when an IPv6 address other than ::1 and link-local is inside', () => {
    const addrs = JSON.stringify([
      { ifname: 'lo', addr_info: [{ family: 'inet6', local: '::1', prefixlen: 128 }] },
      { ifname: 'eth0', addr_info: [{ family: 'inet6', local: '2001:db8:1::5', prefixlen: 64 }, { family: 'inet6', local: 'fe80::1c:2ff:fe3a:1', prefixlen: 64 }] },
    ]);
    const c = check(healthy({ nsAddrs6: ok(addrs) }), 'ipv6');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.addresses).toEqual(['2001:db8:1::5']);
  });

  it('off: fails as a leak when IPv6 has a route out', () => {
    const c = check(healthy({ nsRoute6: ok('[{"dst":"2001:db8::7","gateway":"fe80::1","dev":"eth0","flags":[]}]') }), 'ipv6');
    expect(c.ok).toBe(false);
    expect(c.leak).toBe(true);
    expect(c.detail).toContain('IPv6 can leave: 2001:db8::7 goes dev eth0 via fe80::1');
  });

  const nat = (hostRoute6: CommandOutput | undefined) => {
    const c = { ...config(), ipv6: 'nat', nsAddress6: 'fd6e:7372:ae7:0::2', hostAddress6: 'fd6e:7372:ae7:0::1' } as NamespaceConfig;
    return healthy({
      config: c,
      nsAddrs6: ok(JSON.stringify([{ ifname: 'eth0', addr_info: [{ family: 'inet6', local: 'fd6e:7372:ae7:0::2', prefixlen: 64 }] }])),
      nsRoute6: ok('[{"dst":"2001:db8::7","from":"::","gateway":"fe80::1","dev":"eth0","prefsrc":"fd6e:7372:ae7:0::2","flags":[]}]'),
      ...(hostRoute6 ? { hostRoute6 } : {}),
    });
  };

  it('nat: passes when IPv6 leaves by the uplink device', () => {
    const c = check(nat(ok('[{"dst":"2001:db8::7","from":"fd6e:7372:ae7:0::2","gateway":"fd99:2::1","dev":"ups","table":"7101","flags":[]}]')), 'ipv6');
    expect(c.ok, c.detail).toBe(true);
    expect(c.mode).toBe('nat');
    expect(c.detail).toBe('IPv6 leaves via fd99:2::1 dev ups (nat)');
  });

  it('nat: fails as a leak by another device, and as blocked without a route', () => {
    const leak = check(nat(ok('[{"dst":"2001:db8::7","gateway":"fd99:1::1","dev":"upf","flags":[]}]')), 'ipv6');
    expect(leak.ok).toBe(false);
    expect(leak.leak).toBe(true);
    const blocked = check(nat(fail('RTNETLINK answers: No route to host')), 'ipv6');
    expect(blocked.ok).toBe(false);
    expect(blocked.leak).toBe(false);
    expect(blocked.detail).toContain('blocked, nothing leaks');
  });
});

describe('files', () => {
  it('fails when resolv.conf was overwritten by another tool', () => {
    const facts = healthy();
    facts.netnsFiles['resolv.conf'] = 'nameserver 198.18.0.53\n';
    facts.views['resolv.conf'] = { text: 'nameserver 198.18.0.53\n' };
    const c = check(facts, 'files');
    expect(c.ok).toBe(false);
    expect(c.files[0]).toEqual({ file: 'resolv.conf', present: true, ours: false, mounted: true });
    expect(c.detail).toContain('/etc/netns/slow/resolv.conf was not written by nsroute');
  });

  it('fails when the bind mount is lost (the namespace sees the host file)', () => {
    const facts = healthy();
    facts.views['gai.conf'] = { text: '# the host gai.conf\n' };
    const c = check(facts, 'files');
    expect(c.ok).toBe(false);
    expect(c.files[1]).toEqual({ file: 'gai.conf', present: true, ours: true, mounted: false });
    expect(c.detail).toContain("the namespace's /etc/gai.conf differs from /etc/netns/slow/gai.conf");
  });

  it('a missing final newline is a difference', () => {
    const facts = healthy();
    facts.views['gai.conf'] = { text: facts.netnsFiles['gai.conf']!.replace(/\n$/, '') };
    expect(check(facts, 'files').ok).toBe(false);
  });

  it('resolv.conf and gai.conf are required; nsswitch.conf is optional', () => {
    const facts = healthy();
    delete facts.netnsFiles['gai.conf'];
    delete facts.netnsFiles['nsswitch.conf'];
    const c = check(facts, 'files');
    expect(c.ok).toBe(false);
    expect(c.files.map((x) => x.file)).toEqual(['resolv.conf', 'gai.conf']);
    expect(c.detail).toContain('/etc/netns/slow/gai.conf is missing');
  });
});

describe('the report', () => {
  it('summarises what failed and what leaks', () => {
    const r = evaluate(healthy({ nft: NFT_MISSING, hostRouteUnmarked: UNMARKED_MAIN }));
    expect(r.ok).toBe(false);
    expect(r.leak).toBe(true);
    const lines = reportText(r).split('\n');
    expect(lines[0]).toMatch(/^FAIL route: the namespace's packets get no mark/);
    expect(lines[1]).toMatch(/^FAIL nat: table inet nsroute is missing/);
    expect(lines.at(-1)).toBe('slow: 2 of 7 checks failed (route, nat); leaking: route, nat');
  });

  it('says when nothing leaks', () => {
    const r = evaluate(healthy({ uplinkTable: ok(UPLINK_TABLE_DOWN), hostRoute: fail('RTNETLINK answers: No route to host') }));
    expect(reportText(r).split('\n').at(-1)).toBe('slow: 1 of 7 checks failed (route); nothing leaks');
  });
});

describe('firewall', () => {
  it('fails, without a leak, when another firewall drops the traffic and the holes are gone', () => {
    const f = { ...healthy(), forwardHolesMissing: ['nft inet filter forward', 'iptables-nft'] };
    const c = evaluate(f).checks.find((x) => x.id === 'firewall')!;
    expect(c).toMatchObject({ ok: false, leak: false, blocking: ['nft inet filter forward', 'iptables-nft'] });
    expect(c.detail).toMatch(/^nft inet filter forward, iptables-nft drop the namespace's traffic .*`nsroute up slow` or `nsroute gc` puts them back$/);
  });
});
