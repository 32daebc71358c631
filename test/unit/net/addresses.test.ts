import { describe, expect, it } from 'vitest';
import {
  ula64For,
  isIPv6,
  parseIPv6,
  allocateSubnet,
  blockOf,
  cidrContains,
  cidrToString,
  cidrsOverlap,
  intToIp,
  ipToInt,
  checkCidr4,
  linkAddresses,
  parseIPv4,
  parseStateCidr4,
  type Cidr4,
} from '../../../src/net/addresses.js';
import { parseCidr4 } from '../../../src/net/cidr.js';
import { catchUserError } from '../helpers.js';

const c = (text: string): Cidr4 => parseCidr4(text, 'test');
const str = (x: Cidr4 | undefined) => (x ? cidrToString(x) : x);


describe('ipToInt / intToIp', () => {
  it('round-trips addresses above 128.0.0.0 without going negative', () => {
    expect(ipToInt('255.255.255.255')).toBe(0xffffffff);
    expect(ipToInt('192.168.2.1')).toBe(0xc0a80201);
    expect(intToIp(0xc0a80201)).toBe('192.168.2.1');
    expect(intToIp(ipToInt('10.231.0.2'))).toBe('10.231.0.2');
  });

  it('ipToInt reads every dotted quad as the sum of its parts base 256, and no junk as a number', () => {
    for (let i = 0; i < 2000; i++) {
      const parts = [0, 0, 0, 0].map(() => Math.floor(Math.random() * 256));
      expect(ipToInt(parts.join('.'))).toBe(((parts[0]! * 256 + parts[1]!) * 256 + parts[2]!) * 256 + parts[3]!);
    }
    expect(ipToInt('0.0.0.0')).toBe(0);
    for (const junk of ['', 'a.b.c.d', '1..2.3', '1.2.3.', '.1.2.3', '1.2.3.x', '1.2.3.-4']) expect(ipToInt(junk), junk).toBeNaN();
  });
});

describe('parseIPv4', () => {
  it.each(['192.168.2.1', '0.0.0.0', '255.255.255.255', '10.0.0.1'])('accepts %s', (ip) => {
    expect(parseIPv4(ip, '--via')).toBe(ip);
  });

  it.each(['junk', '', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', ' 1.2.3.4', '::1', '2001:db8::1', '::ffff:1.2.3.4', '1.2.3.4/32', '1.2.3.4\n'])(
    'rejects %j naming the option',
    (text) => {
      const e = catchUserError(() => parseIPv4(text, '--via'));
      expect(e.message).toContain('--via');
      expect(e.message).toContain(JSON.stringify(text));
      expect(e.hint).toBeTruthy();
    },
  );
});

describe('parseCidr4', () => {
  it('parses a network block', () => {
    expect(c('10.231.0.0/30')).toEqual({ network: ipToInt('10.231.0.0'), prefix: 30 });
    expect(c('0.0.0.0/0')).toEqual({ network: 0, prefix: 0 });
    expect(c('192.168.2.1/32')).toEqual({ network: ipToInt('192.168.2.1'), prefix: 32 });
    expect(c('224.0.0.0/4')).toEqual({ network: ipToInt('224.0.0.0'), prefix: 4 });
  });

  it.each(['junk', '', '10.0.0.0', '10.0.0.0/', '/30', '10.0.0.0/x', '10.0.0.0/030', '10.0.0/24', '300.0.0.0/8', 'fd00::/64', '2001:db8::/32', '10.0.0.0/24/1', '10.0.0.0/-1'])(
    'rejects %j with a UserError naming the option',
    (text) => {
      const e = catchUserError(() => parseCidr4(text, '--subnet'));
      expect(e.message).toContain('--subnet');
    },
  );

  it('rejects a prefix longer than 32 bits', () => {
    const e = catchUserError(() => parseCidr4('10.0.0.0/33', '--subnet'));
    expect(e.message).toContain('--subnet');
    expect(e.message).toMatch(/33|CIDR/);
    catchUserError(() => parseCidr4('10.0.0.0/99', '--subnet'));
  });

  // checkCidr4 (uint32 math, for profiles: no ip-cidr on the hot path) must say what
  // parseCidr4 (ip-cidr) says, word for word.
  it.each([
    '10.231.0.0/30', '0.0.0.0/0', '192.168.2.1/32', '224.0.0.0/4', '255.255.255.255/32', '10.0.0.0/8', '10.0.0.0/08', '10.0.0.0/0',
    'junk', '', '10.0.0.0', '10.0.0.0/', '/30', '10.0.0.0/x', '10.0.0.0/030', '10.0.0/24', '300.0.0.0/8', 'fd00::/64', '10.0.0.0/24/1', '10.0.0.0/-1',
    '10.0.0.0/33', '10.0.0.0/99', '10.231.0.5/24', '192.168.2.3/30', '010.0.0.0/8', '10.0.0.00/24', ' 10.0.0.0/24', '10.0.0.0/24 ', '1.2.3.4/31',
  ])('checkCidr4 agrees with parseCidr4 on %j', (text) => {
    const verdict = (f: typeof parseCidr4) => {
      try {
        return { ok: f(text, 'subnet in a.toml') };
      } catch (e) {
        return { err: (e as Error).message, hint: (e as { hint?: string }).hint };
      }
    };
    expect(verdict(checkCidr4)).toEqual(verdict(parseCidr4));
  });

  it('rejects host bits set, and the hint names the network', () => {
    const e = catchUserError(() => parseCidr4('10.231.0.5/24', 'subnet in slow.toml'));
    expect(e.message).toContain('subnet in slow.toml');
    expect(e.message).toContain('host bits');
    expect(e.hint).toContain('10.231.0.0/24');
    const e2 = catchUserError(() => parseCidr4('192.168.2.3/30', '--subnet'));
    expect(e2.hint).toContain('192.168.2.0/30');
  });
});

describe('cidrsOverlap', () => {
  const cases: [string, string, boolean][] = [
    ['10.0.0.0/8', '10.231.0.0/30', true],
    ['10.231.0.0/30', '10.231.0.0/30', true],
    ['10.231.0.0/30', '10.231.0.4/30', false], // adjacent
    ['10.231.0.0/29', '10.231.0.4/30', true],
    ['10.231.0.0/30', '10.231.0.3/32', true],
    ['10.231.0.0/30', '10.231.0.4/32', false],
    ['0.0.0.0/0', '203.0.113.7/32', true],
    ['192.168.0.0/16', '192.168.1.0/24', true],
    ['200.0.0.0/8', '201.0.0.0/8', false],
    ['128.0.0.0/1', '127.255.255.255/32', false],
    ['128.0.0.0/1', '255.255.255.255/32', true],
    ['172.29.0.0/16', '10.231.0.0/16', false],
  ];
  it.each(cases)('%s vs %s -> %s (both ways)', (a, b, want) => {
    expect(cidrsOverlap(c(a), c(b))).toBe(want);
    expect(cidrsOverlap(c(b), c(a))).toBe(want);
  });
});

describe('cidrContains / blockOf', () => {
  it('finds the block an address lies in', () => {
    expect(str(blockOf('192.168.2.10', 24))).toBe('192.168.2.0/24');
    expect(str(blockOf('192.168.2.10', 32))).toBe('192.168.2.10/32');
    expect(cidrContains(c('192.168.2.0/24'), '192.168.2.1')).toBe(true);
    expect(cidrContains(c('192.168.2.0/24'), '192.168.3.1')).toBe(false);
    expect(cidrContains(c('0.0.0.0/0'), '250.1.1.1')).toBe(true);
  });
});

describe('linkAddresses', () => {
  it('uses .1 (host) and .2 (namespace) in a /30', () => {
    expect(linkAddresses(c('10.231.0.4/30'))).toEqual({ host: '10.231.0.5', ns: '10.231.0.6' });
  });
  it('uses both addresses of a /31 (RFC 3021)', () => {
    expect(linkAddresses(c('10.231.0.8/31'))).toEqual({ host: '10.231.0.8', ns: '10.231.0.9' });
  });
  it('uses .1 and .2 of a larger block', () => {
    expect(linkAddresses(c('192.168.50.0/24'))).toEqual({ host: '192.168.50.1', ns: '192.168.50.2' });
  });
  it('refuses a /32', () => {
    catchUserError(() => linkAddresses(c('10.231.0.1/32')));
  });
});

describe('allocateSubnet', () => {
  const pools = [c('10.231.0.0/16'), c('172.29.0.0/16')];

  it('returns the first /30 of the first pool when nothing is taken', () => {
    expect(str(allocateSubnet(pools, []))).toBe('10.231.0.0/30');
  });

  it('skips blocks holding a host address', () => {
    expect(str(allocateSubnet(pools, [c('10.231.0.1/32')]))).toBe('10.231.0.4/30');
    expect(str(allocateSubnet(pools, [c('10.231.0.0/29')]))).toBe('10.231.0.8/30');
    expect(str(allocateSubnet(pools, [c('10.231.0.0/30'), c('10.231.0.6/32'), c('10.231.0.8/30')]))).toBe('10.231.0.12/30');
  });

  it('returns a block of the requested prefix', () => {
    expect(str(allocateSubnet(pools, [c('10.231.0.5/32')], 24))).toBe('10.231.1.0/24');
    expect(str(allocateSubnet(pools, [c('10.231.0.0/31')], 31))).toBe('10.231.0.2/31');
  });

  // Counts how often allocateSubnet reads an element of the taken list (a Proxy on the array).
  function counting(taken: Cidr4[]): { list: Cidr4[]; reads: () => number } {
    let reads = 0;
    const list = new Proxy(taken, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    return { list, reads: () => reads };
  }

  // The plain definition: the first aligned block of the pools that overlaps nothing taken.
  function reference(ps: Cidr4[], taken: Cidr4[], prefix = 30): Cidr4 | undefined {
    const step = 2 ** (32 - prefix);
    for (const pool of ps) {
      for (let n = pool.network; n + step <= pool.network + 2 ** (32 - pool.prefix); n += step) {
        const cand = { network: n, prefix };
        if (!taken.some((t) => cidrsOverlap(t, cand))) return cand;
      }
    }
    return undefined;
  }

  it('skips past a large clashing block at once', () => {
    expect(str(allocateSubnet(pools, [c('10.231.0.0/17')]))).toBe('10.231.128.0/30');
    expect(str(allocateSubnet(pools, [c('10.231.0.0/16')]))).toBe('172.29.0.0/30');
  });

  it('with 1000 namespaces taken reads each taken block a bounded number of times (not once per candidate)', () => {
    const taken = Array.from({ length: 1000 }, (_, i) => ({ network: ipToInt('10.231.0.0') + 4 * i, prefix: 30 }));
    const { list, reads } = counting(taken);
    expect(str(allocateSubnet(pools, list))).toBe('10.231.15.160/30');
    // One pass to sort and merge: a few reads per block, where probing every candidate
    // against every block read them 1000 * 1001 / 2 times.
    expect(reads()).toBeLessThanOrEqual(3 * taken.length);
  });

  it('agrees with the plain definition on random host blocks, prefixes and pools', () => {
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let round = 0; round < 300; round++) {
      const smallPools = [c('10.231.0.0/24'), c('172.29.0.0/26')];
      const taken: Cidr4[] = [];
      for (let i = 0, n = rnd(40); i < n; i++) {
        const prefix = 22 + rnd(11);
        const base = rnd(2) ? ipToInt('10.231.0.0') : ipToInt('172.29.0.0');
        taken.push(blockOf(intToIp(base + rnd(512)), prefix));
      }
      const prefix = 29 + rnd(3);
      expect(str(allocateSubnet(smallPools, taken, prefix)), `round ${round}`).toBe(str(reference(smallPools, taken, prefix)));
    }
  });

  it('uses the second pool when a block larger than the pool (10/8) covers the first', () => {
    expect(str(allocateSubnet(pools, [c('10.0.0.0/8'), c('172.29.0.0/30')]))).toBe('172.29.0.4/30');
  });

  it('returns undefined when every pool is full', () => {
    expect(allocateSubnet(pools, [c('10.0.0.0/8'), c('172.16.0.0/12')])).toBeUndefined();
    expect(allocateSubnet(pools, [c('0.0.0.0/0')])).toBeUndefined();
    expect(allocateSubnet([], [])).toBeUndefined();
  });

  it('finds the last free /30 of a nearly full pool', () => {
    const small = [c('10.231.0.0/28')];
    expect(str(allocateSubnet(small, [c('10.231.0.0/29'), c('10.231.0.8/30')]))).toBe('10.231.0.12/30');
    expect(allocateSubnet(small, [c('10.231.0.0/29'), c('10.231.0.8/30'), c('10.231.0.14/32')])).toBeUndefined();
  });
});

describe('ula64For', () => {
  it('derives the /64 from the IPv4 block, so distinct blocks get distinct /64s', () => {
    expect(ula64For(parseCidr4('10.231.0.4/30', 't'))).toEqual({ subnet6: 'fd6e:7372:ae7:4::/64', host6: 'fd6e:7372:ae7:4::1', ns6: 'fd6e:7372:ae7:4::2' });
    expect(ula64For(parseCidr4('172.29.1.0/31', 't')).subnet6).toBe('fd6e:7372:ac1d:100::/64');
    const seen = new Set<string>();
    for (let i = 0; i < 64; i++) seen.add(ula64For({ network: ipToInt('10.231.0.0') + 4 * i, prefix: 30 }).subnet6);
    expect(seen.size).toBe(64);
  });
});

describe('isIPv6 / parseIPv6', () => {
  it('accepts the usual forms', () => {
    for (const a of ['fd99:2::1', '::1', 'fe80::1', '2001:db8:0:0:0:0:0:1', '::ffff:192.0.2.1', 'FD00::A']) expect(isIPv6(a), a).toBe(true);
    expect(parseIPv6('FD00::A', '--via6')).toBe('fd00::a');
  });
  it('rejects junk with the option named', () => {
    for (const a of ['', '1.2.3.4', 'fd99::2::1', 'fd99:12345::1', 'g::1', '1:2:3:4:5:6:7:8:9', 'example.org']) expect(isIPv6(a), a).toBe(false);
    expect(() => parseIPv6('nope', '--via6')).toThrow(/--via6: "nope" is not an IPv6 address/);
  });
});

describe('parseStateCidr4 (uint32 only, for blocks read from state)', () => {
  it('parses what parseCidr4 parses, to the same value', () => {
    for (const t of ['10.231.0.4/30', '172.29.0.8/31', '0.0.0.0/0', '255.255.255.255/32', '10.0.0.0/8']) expect(parseStateCidr4(t)).toEqual(c(t));
  });

  it.each(['10.231.0.5/30', '10.231.0.4', '10.231.0.4/33', '10.231.0.4/', '10.231.0/30', '256.0.0.0/8', ' 10.231.0.4/30', '10.231.0.4/30 ', '10.231.0.4/030', ''])('refuses %j', (t) => {
    expect(() => parseStateCidr4(t)).toThrow();
  });
});
