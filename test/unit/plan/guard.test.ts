import { describe, expect, it } from 'vitest';
import { aggregateBlocks, currentGuardRules, guardRuleOf, guardSyncLines, renderGuardRules } from '../../../src/plan/guard.js';
import { cidrToString } from '../../../src/net/addresses.js';
import { parseCidr4 } from '../../../src/net/cidr.js';
import type { NamespaceConfig } from '../../../src/plan/types.js';

const UPLINK = { via: '192.168.2.1', dev: 'eth1', table: 7101, mark: 0x6e720001, pref: 4200 };
function nat(subnet: string, over: Partial<NamespaceConfig> = {}): NamespaceConfig {
  return { name: subnet, mode: 'nat', hostIface: 'nsr-x', nsIface: 'eth0', subnet, hostAddress: '', nsAddress: '', prefix: 30, dns: [], dnsSource: 'option', uplink: UPLINK, ...over };
}

const agg = (xs: string[]) => aggregateBlocks(xs.map((x) => parseCidr4(x, 't'))).map(cidrToString);

describe('aggregateBlocks', () => {
  it('merges adjacent /30s into the fewest blocks, exactly', () => {
    expect(agg(['10.231.0.0/30'])).toEqual(['10.231.0.0/30']);
    expect(agg(['10.231.0.4/30', '10.231.0.0/30'])).toEqual(['10.231.0.0/29']);
    expect(agg(['10.231.0.0/30', '10.231.0.4/30', '10.231.0.8/30'])).toEqual(['10.231.0.0/29', '10.231.0.8/30']);
    // 10.231.0.4-11 is not one aligned block: two /30s would cover it... as /30 + /30
    expect(agg(['10.231.0.4/30', '10.231.0.8/30'])).toEqual(['10.231.0.4/30', '10.231.0.8/30']);
  });

  it('never covers an address outside the blocks it was given', () => {
    const given = ['10.231.0.0/30', '10.231.0.8/30', '10.231.0.12/30', '172.29.0.0/31', '10.231.0.16/28'];
    const out = aggregateBlocks(given.map((x) => parseCidr4(x, 't')));
    const inGiven = (ip: number) => given.some((g) => { const c = parseCidr4(g, 't'); return ip >= c.network && ip < c.network + 2 ** (32 - c.prefix); });
    for (const b of out) for (let ip = b.network; ip < b.network + 2 ** (32 - b.prefix); ip++) expect(inGiven(ip)).toBe(true);
    expect(out.map(cidrToString)).toEqual(['10.231.0.0/30', '10.231.0.8/29', '10.231.0.16/28', '172.29.0.0/31']);
  });

  it('grows with log2 of the number of namespaces, not with the number', () => {
    // 1000 /30s allocated first-free from the start of the pool.
    const blocks = Array.from({ length: 1000 }, (_, i) => ({ network: parseCidr4('10.231.0.0/16', 't').network + i * 4, prefix: 30 }));
    expect(aggregateBlocks(blocks).map(cidrToString)).toEqual(['10.231.0.0/21', '10.231.8.0/22', '10.231.12.0/23', '10.231.14.0/24', '10.231.15.0/25', '10.231.15.128/27']);
    expect(aggregateBlocks(blocks).map(cidrToString)[0]).toBe('10.231.0.0/21') // 4000 addresses: 2048 + 1024 + 512 + 256 + 128 + 32;
  });
});

describe('renderGuardRules', () => {
  it('has nothing without nat namespaces', () => {
    expect(renderGuardRules([])).toEqual({ v4: [], v6: [] });
    expect(renderGuardRules([nat('', { mode: 'bridge' })])).toEqual({ v4: [], v6: [] });
  });

  it('lands the gotos first, then skips the host and the host mark, then blocks', () => {
    expect(renderGuardRules([nat('10.231.0.0/30'), nat('10.231.0.4/30')])).toEqual({
      v4: ['pref 4203 nop', 'pref 4201 iif lo goto 4203', 'pref 4201 fwmark 0x6e720000 goto 4203', 'pref 4202 from 10.231.0.0/29 unreachable'],
      v6: [],
    });
  });

  it('leaves IPv4 blocks of namespaces without an uplink out (rp_filter checks their replies without a mark)', () => {
    expect(renderGuardRules([nat('10.231.0.0/30', { uplink: undefined })]).v4).toEqual([]);
    // Between two guarded blocks, an unguarded one is not covered by the aggregate.
    const r = renderGuardRules([nat('10.231.0.0/30'), nat('10.231.0.4/30', { uplink: undefined }), nat('10.231.0.8/30')]);
    expect(r.v4.filter((l) => l.startsWith('pref 4202'))).toEqual(['pref 4202 from 10.231.0.0/30 unreachable', 'pref 4202 from 10.231.0.8/30 unreachable']);
  });

  it('guards nsroute\'s ULA block for IPv6 only when a namespace has IPv6, with or without an uplink', () => {
    expect(renderGuardRules([nat('10.231.0.0/30', { uplink: undefined, ipv6: 'nat' })]).v6).toContain('pref 4202 from fd6e:7372::/32 unreachable');
    const r = renderGuardRules([nat('10.231.0.0/30', { ipv6: 'nat' })]);
    expect(r.v6).toEqual(['pref 4203 nop', 'pref 4201 iif lo goto 4203', 'pref 4201 fwmark 0x6e720000 goto 4203', 'pref 4202 from fd6e:7372::/32 unreachable']);
  });
});

describe('reading rules back', () => {
  // `ip -j rule show` after the rules above were added (iproute2 6.1).
  const json = [
    { priority: 0, src: 'all', table: 'local' },
    { priority: 4200, src: 'all', fwmark: '0x6e720001', table: '7101' },
    { priority: 4201, src: 'all', iif: 'lo', goto: 4203 },
    { priority: 4201, src: 'all', fwmark: '0x6e720000', goto: 4203 },
    { priority: 4202, src: '10.231.0.0', srclen: 29, action: 'unreachable' },
    { priority: 4203, src: 'all', nop: null },
    { priority: 32766, src: 'all', table: 'main' },
  ];

  it('recognises exactly the rules it renders', () => {
    expect(new Set(currentGuardRules(json))).toEqual(new Set(renderGuardRules([nat('10.231.0.0/29')]).v4));
    expect(guardRuleOf({ priority: 4202, src: 'fd6e:7372::', srclen: 32, action: 'unreachable' })).toBe('pref 4202 from fd6e:7372::/32 unreachable');
  });

  it("leaves other tools' rules at the same priorities alone", () => {
    expect(guardRuleOf({ priority: 4201, src: 'all', iif: 'lo', goto: 4203, fwmark: '0x1' })).toBeUndefined();
    expect(guardRuleOf({ priority: 4202, src: '10.0.0.0', srclen: 8, table: '100' })).toBeUndefined();
    expect(guardRuleOf({ priority: 4202, src: '10.0.0.0', srclen: 8, iif: 'eth0', action: 'unreachable' })).toBeUndefined();
    expect(guardRuleOf({ priority: 4203, src: '10.0.0.0', srclen: 8, nop: null })).toBeUndefined();
    expect(guardRuleOf({ priority: 4201, src: 'all', fwmark: '0x6e720000', fwmask: '0xffff0000', goto: 4203 })).toBeUndefined();
    expect(guardRuleOf({ priority: 4300, src: 'all', nop: null })).toBeUndefined();
  });
});

describe('guardSyncLines', () => {
  const one = renderGuardRules([nat('10.231.0.0/30')]).v4;
  const two = renderGuardRules([nat('10.231.0.0/30'), nat('10.231.0.4/30')]).v4;

  it('adds everything in order on an empty host, and removes in reverse order', () => {
    expect(guardSyncLines([], one)).toEqual(one.map((r) => `rule add ${r}`));
    expect(guardSyncLines(one, [])).toEqual([
      'rule del pref 4202 from 10.231.0.0/30 unreachable',
      'rule del pref 4201 iif lo goto 4203',
      'rule del pref 4201 fwmark 0x6e720000 goto 4203',
      'rule del pref 4203 nop',
    ]);
  });

  it('adds the wider block before removing the narrower one', () => {
    expect(guardSyncLines(one, two)).toEqual(['rule add pref 4202 from 10.231.0.0/29 unreachable', 'rule del pref 4202 from 10.231.0.0/30 unreachable']);
  });

  it('does nothing when the host already matches, and removes duplicates', () => {
    expect(guardSyncLines(two, two)).toEqual([]);
    expect(guardSyncLines([...two, 'pref 4203 nop'], two)).toEqual(['rule del pref 4203 nop']);
  });
});
