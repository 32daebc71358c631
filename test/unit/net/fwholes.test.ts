import { describe, expect, it } from 'vitest';
import { chainsSuffice, forwardChains, hasNsrouteTable, renderHoleDeletes, renderHoleInserts, xtablesHolesMissing } from '../../../src/net/fwholes.js';

// `nft -j list ruleset` as nft 1.0.6 prints it (trimmed to what matters).
const ruleset = (extra: object[] = []) => ({
  nftables: [
    { metainfo: { version: '1.0.6' } },
    { chain: { family: 'inet', table: 'filter', name: 'forward', handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
    { chain: { family: 'inet', table: 'firewalld', name: 'filter_FORWARD', handle: 5, type: 'filter', hook: 'forward', prio: 10, policy: 'accept' } },
    { rule: { family: 'inet', table: 'firewalld', chain: 'filter_FORWARD', handle: 9, expr: [{ reject: { type: 'icmpx', expr: 'admin-prohibited' } }] } },
    { chain: { family: 'inet', table: 'open', name: 'fwd', handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } },
    { chain: { family: 'ip', table: 'filter', name: 'FORWARD', handle: 2, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
    { chain: { family: 'inet', table: 'nsroute', name: 'forward', handle: 3, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
    { chain: { family: 'inet', table: 'filter', name: 'input', handle: 4, type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
    ...extra,
  ],
});

describe('forwardChains', () => {
  it('finds restrictive forward chains of other tools, not ours, not iptables-nft ones, not other hooks', () => {
    const chains = forwardChains(ruleset());
    expect(chains.map((c) => [`${c.family} ${c.table} ${c.name}`, c.restrictive])).toEqual([
      ['inet filter forward', true],
      ['inet firewalld filter_FORWARD', true],
      ['inet open fwd', false],
    ]);
  });

  it('sees its own holes by their comment, and does not count them as restrictive', () => {
    const ours = { rule: { family: 'inet', table: 'open', chain: 'fwd', handle: 7, comment: 'nsroute', expr: [{ accept: null }] } };
    const chains = forwardChains(ruleset([ours]));
    expect(chains.find((c) => c.table === 'open')).toMatchObject({ restrictive: false, ourRules: [7] });
  });
});

describe('renderHoleInserts / renderHoleDeletes', () => {
  it('opens each restrictive chain once, accept first, then replies', () => {
    const text = renderHoleInserts(forwardChains(ruleset()));
    expect(text.split('\n').filter(Boolean)).toEqual([
      'insert rule inet filter forward oifname "nsr*" ct state established,related accept comment "nsroute"',
      'insert rule inet filter forward iifname "nsr*" accept comment "nsroute"',
      'insert rule inet firewalld filter_FORWARD oifname "nsr*" ct state established,related accept comment "nsroute"',
      'insert rule inet firewalld filter_FORWARD iifname "nsr*" accept comment "nsroute"',
    ]);
  });

  it('does nothing for chains already open, and deletes exactly its own rules', () => {
    const holes = [7, 8].map((handle) => ({ rule: { family: 'inet', table: 'filter', chain: 'forward', handle, comment: 'nsroute', expr: [{ accept: null }] } }));
    const chains = forwardChains(ruleset(holes));
    expect(renderHoleInserts(chains)).not.toContain('inet filter forward');
    expect(renderHoleDeletes(chains)).toBe('delete rule inet filter forward handle 7\ndelete rule inet filter forward handle 8\n');
    expect(renderHoleDeletes(forwardChains(ruleset()))).toBe('');
  });
});

describe('xtablesHolesMissing / hasNsrouteTable', () => {
  const xt = (withJump: boolean) => ({
    nftables: [
      { table: { family: 'ip', name: 'filter', handle: 1 } },
      { chain: { family: 'ip', table: 'filter', name: 'FORWARD', handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
      ...(withJump ? [{ rule: { family: 'ip', table: 'filter', chain: 'FORWARD', handle: 4, expr: [{ counter: { packets: 0, bytes: 0 } }, { jump: { target: 'NSROUTE-FORWARD' } }] } }] : []),
      { chain: { family: 'ip6', table: 'filter', name: 'FORWARD', handle: 1, type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } },
    ],
  });

  it('wants holes in an iptables-nft FORWARD chain of policy drop until the jump is there', () => {
    expect(xtablesHolesMissing(xt(false))).toEqual(['ip filter FORWARD']);
    expect(xtablesHolesMissing(xt(true))).toEqual([]);
    expect(xtablesHolesMissing(undefined)).toEqual([]);
  });

  it("sees whether nsroute's table is there", () => {
    expect(hasNsrouteTable(xt(false))).toBe(false);
    expect(hasNsrouteTable({ nftables: [{ table: { family: 'inet', name: 'nsroute', handle: 9 } }] })).toBe(true);
    // From `nft -j list chains`, which prints chains only.
    expect(hasNsrouteTable({ nftables: [{ chain: { family: 'inet', table: 'nsroute', name: 'postrouting', handle: 2, type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' } }] })).toBe(true);
    expect(hasNsrouteTable({ nftables: [{ chain: { family: 'ip', table: 'nsroute', name: 'postrouting', handle: 2 } }] })).toBe(false);
  });
});

// `nft -j list chains` (no rules) stands in for the whole ruleset unless another tool has a
// native forward chain, whose rules decide whether it needs holes.
describe('chainsSuffice', () => {
  const chains = (...c: object[]) => ({ nftables: [{ metainfo: { version: '1.0.6' } }, ...c.map((chain) => ({ chain }))] });
  it('when the only forward chains are ours and iptables-nft ones', () => {
    expect(chainsSuffice(chains())).toBe(true);
    expect(chainsSuffice(chains({ family: 'inet', table: 'nsroute', name: 'forward', hook: 'forward' }, { family: 'ip', table: 'filter', name: 'FORWARD', hook: 'forward' }, { family: 'inet', table: 'filter', name: 'input', hook: 'input' }))).toBe(true);
  });
  it('not when another native table has a forward chain', () => {
    expect(chainsSuffice(chains({ family: 'inet', table: 'firewalld', name: 'filter_FORWARD', hook: 'forward' }))).toBe(false);
    expect(chainsSuffice(chains({ family: 'ip', table: 'filter', name: 'forward', hook: 'forward' }))).toBe(false);
    // Every chain forwardChains finds in a whole ruleset is one that makes the chains not enough.
    expect(forwardChains(ruleset()).length).toBeGreaterThan(0);
    expect(chainsSuffice(ruleset())).toBe(false);
  });
});
