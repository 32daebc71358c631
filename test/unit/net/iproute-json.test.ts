import { describe, expect, it } from 'vitest';
import { parseAddrs, parseLinks, parseRouteGet, parseRoutes, parseRules } from '../../../src/net/iproute-json.js';

// Recorded from iproute2 6.1 in a scratch namespace (trimmed of fields nsroute ignores only
// where noted). Commands are the ones src/sys/hostfacts.ts runs.

// ip -j -d link show
const LINKS = JSON.parse(`[
 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","promiscuity":0,"allmulti":0,"min_mtu":0,"max_mtu":0,"inet6_addr_gen_mode":"eui64","num_tx_queues":1,"num_rx_queues":1},
 {"ifindex":2,"link":"v0","ifname":"v1","flags":["BROADCAST","MULTICAST","M-DOWN"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"c6:47:dd:21:52:a1","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},"inet6_addr_gen_mode":"eui64"},
 {"ifindex":3,"link":"peer1","ifname":"eth1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"ae:d6:cb:1a:61:59","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},"inet6_addr_gen_mode":"eui64"},
 {"ifindex":4,"ifname":"wg0","flags":["POINTOPOINT","NOARP","UP","LOWER_UP"],"mtu":1420,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"none","linkinfo":{"info_kind":"wireguard"}},
 {"ifindex":5,"ifname":"eth2","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP"],"mtu":1500,"qdisc":"fq_codel","operstate":"DOWN","group":"default","txqlen":1000,"link_type":"ether","address":"52:54:00:12:34:57","broadcast":"ff:ff:ff:ff:ff:ff"}
]`);

// ip -j address show
const ADDRS = JSON.parse(`[
 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]},
 {"ifindex":2,"link":"v0","ifname":"v1","flags":["BROADCAST","MULTICAST","M-DOWN"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","group":"default","txqlen":1000,"link_type":"ether","address":"c6:47:dd:21:52:a1","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[]},
 {"ifindex":3,"link":"peer1","ifname":"eth1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"ae:d6:cb:1a:61:59","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"192.168.2.10","prefixlen":24,"scope":"global","label":"eth1","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fd00::10","prefixlen":64,"scope":"global","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::acd6:cbff:fe1a:6159","prefixlen":64,"scope":"link","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]},
 {"ifindex":4,"ifname":"wg0","flags":["POINTOPOINT","NOARP","UP","LOWER_UP"],"mtu":1420,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"none","addr_info":[{"family":"inet","local":"10.9.0.2","prefixlen":32,"scope":"global","label":"wg0","valid_life_time":4294967295,"preferred_life_time":4294967295}]}
]`);

// ip -4 -N -j route show table all: main-table routes carry no "table"; unicast routes carry
// no "type"; everything else is a numeric string because of -N.
const ROUTES = JSON.parse(`[
 {"dst":"10.9.0.0/24","dev":"wg0","table":"51820","scope":"253","flags":[]},
 {"type":"6","dst":"10.50.0.0/16","table":"51820","flags":[]},
 {"dst":"default","gateway":"192.168.2.1","dev":"eth1","table":"7101","flags":[]},
 {"type":"7","dst":"default","table":"7101","metric":4278190080,"flags":[]},
 {"dst":"default","gateway":"192.168.2.1","dev":"eth1","flags":[]},
 {"dst":"192.168.2.0/24","dev":"eth1","protocol":"2","scope":"253","prefsrc":"192.168.2.10","flags":[]},
 {"type":"2","dst":"127.0.0.0/8","dev":"lo","table":"255","protocol":"2","scope":"254","prefsrc":"127.0.0.1","flags":[]},
 {"type":"2","dst":"192.168.2.10","dev":"eth1","table":"255","protocol":"2","scope":"254","prefsrc":"192.168.2.10","flags":[]},
 {"type":"3","dst":"192.168.2.255","dev":"eth1","table":"255","protocol":"2","scope":"253","prefsrc":"192.168.2.10","flags":[]},
 {"type":"8","dst":"10.66.0.0/16","flags":[]}
]`);

// ip -4 -N -j rule show
const RULES = JSON.parse(`[
 {"priority":0,"src":"all","table":"255"},
 {"priority":4200,"src":"all","fwmark":"0x6e720001","table":"7101"},
 {"priority":5210,"src":"all","fwmark":"0xca6c","fwmask":"0xffff","table":"51820"},
 {"priority":5270,"src":"all","table":"52"},
 {"priority":32765,"src":"all","action":"goto","target":32766},
 {"priority":32766,"src":"all","table":"254"},
 {"priority":32767,"src":"all","table":"253"}
]`);

describe('parseLinks', () => {
  const links = parseLinks(LINKS);

  it('reads index, name, kind', () => {
    expect(links.map((l) => l.name)).toEqual(['lo', 'v1', 'eth1', 'wg0', 'eth2']);
    expect(links.map((l) => l.index)).toEqual([1, 2, 3, 4, 5]);
    expect(links.find((l) => l.name === 'eth1')?.kind).toBe('veth');
    expect(links.find((l) => l.name === 'wg0')?.kind).toBe('wireguard');
    expect(links.find((l) => l.name === 'lo')?.kind).toBeUndefined();
  });

  it('is up only with the UP flag (LOWER_UP or M-DOWN do not count; NO-CARRIER still is up)', () => {
    const up = Object.fromEntries(links.map((l) => [l.name, l.up]));
    expect(up).toEqual({ lo: true, v1: false, eth1: true, wg0: true, eth2: true });
    expect(parseLinks([{ ifindex: 9, ifname: 'x', flags: ['BROADCAST', 'LOWER_UP'] }])[0]?.up).toBe(false);
  });

  it('returns [] for anything that is not an array', () => {
    expect(parseLinks(undefined)).toEqual([]);
    expect(parseLinks({ ifname: 'eth0' })).toEqual([]);
    expect(parseLinks('[]')).toEqual([]);
  });
});

describe('parseAddrs', () => {
  it('lists IPv4 and IPv6 addresses per device with their prefix', () => {
    expect(parseAddrs(ADDRS)).toEqual([
      { dev: 'lo', family: 4, local: '127.0.0.1', prefix: 8 },
      { dev: 'lo', family: 6, local: '::1', prefix: 128 },
      { dev: 'eth1', family: 4, local: '192.168.2.10', prefix: 24 },
      { dev: 'eth1', family: 6, local: 'fd00::10', prefix: 64 },
      { dev: 'eth1', family: 6, local: 'fe80::acd6:cbff:fe1a:6159', prefix: 64 },
      { dev: 'wg0', family: 4, local: '10.9.0.2', prefix: 32 },
    ]);
  });

  it('ignores links without addr_info and address families it does not know', () => {
    expect(parseAddrs([{ ifname: 'x' }, { ifname: 'y', addr_info: [{ family: 'bridge', local: 'a', prefixlen: 1 }] }])).toEqual([]);
  });
});

describe('parseRoutes', () => {
  const routes = parseRoutes(ROUTES);

  it('puts routes without "table" in main (254) and numeric tables as numbers', () => {
    expect(routes.map((r) => r.table)).toEqual([51820, 51820, 7101, 7101, 254, 254, 255, 255, 255, 254]);
  });

  it('names numeric route types and defaults to unicast', () => {
    expect(routes.map((r) => r.type)).toEqual(['unicast', 'blackhole', 'unicast', 'unreachable', 'unicast', 'unicast', 'local', 'local', 'broadcast', 'prohibit']);
  });

  it('keeps dst, dev and gateway as given', () => {
    expect(routes[4]).toEqual({ dst: 'default', table: 254, type: 'unicast', dev: 'eth1', gateway: '192.168.2.1' });
    expect(routes[0]).toEqual({ dst: '10.9.0.0/24', table: 51820, type: 'unicast', dev: 'wg0', gateway: undefined });
    expect(routes[3]).toEqual({ dst: 'default', table: 7101, type: 'unreachable', metric: 4278190080, dev: undefined, gateway: undefined });
    expect(routes[7]?.dst).toBe('192.168.2.10'); // host route: no /32 suffix
  });

  it('passes an unknown numeric type through unchanged', () => {
    expect(parseRoutes([{ dst: '1.2.3.0/24', type: '9' }])[0]?.type).toBe('9');
  });
});

describe('parseRules', () => {
  const rules = parseRules(RULES);

  it('reads priority, numeric table and hex fwmark', () => {
    expect(rules[1]).toEqual({ priority: 4200, table: 7101, fwmark: 0x6e720001 });
    expect(rules[2]).toEqual({ priority: 5210, table: 51820, fwmark: 0xca6c });
    expect(rules[0]).toEqual({ priority: 0, table: 255, fwmark: undefined });
    expect(rules.map((r) => r.table)).toEqual([255, 7101, 51820, 52, undefined, 254, 253]);
  });

  it('leaves table undefined for goto rules and names it cannot read', () => {
    expect(rules[4]).toEqual({ priority: 32765, table: undefined, fwmark: undefined });
    expect(parseRules([{ priority: 100, table: 'main' }])[0]?.table).toBeUndefined();
  });
});

describe('parseRouteGet', () => {
  it('reads the device of an on-link destination (no gateway)', () => {
    const json = JSON.parse('[{"dst":"192.168.2.1","dev":"eth1","prefsrc":"192.168.2.10","flags":[],"uid":0,"cache":[]}]');
    expect(parseRouteGet(json)).toEqual({ dev: 'eth1', gateway: undefined });
  });
  it('reads the gateway of a routed destination', () => {
    const json = JSON.parse('[{"dst":"10.20.0.1","gateway":"192.168.2.1","dev":"eth1","prefsrc":"192.168.2.10","flags":[],"uid":0,"cache":[]}]');
    expect(parseRouteGet(json)).toEqual({ dev: 'eth1', gateway: '192.168.2.1' });
  });
  it('is undefined for an empty answer', () => {
    expect(parseRouteGet([])).toBeUndefined();
    expect(parseRouteGet(null)).toBeUndefined();
  });
});
