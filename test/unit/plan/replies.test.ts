import { describe, expect, it } from 'vitest';
import { buildRepliesPlan, repliesConflicts } from '../../../src/plan/replies.js';
import { MARK_BASE, RULE_PREF, TABLE_BASE } from '../../../src/plan/plan.js';
import { resolveProfile } from '../../../src/profile/profile.js';
import { nftHasReplies, renderNftRuleset } from '../../../src/net/nft.js';
import { evaluateReplies, type RepliesFacts } from '../../../src/check/replies.js';
import { renderGuardRules } from '../../../src/plan/guard.js';
import type { HostFacts, NamespaceConfig } from '../../../src/plan/types.js';
import { catchUserError } from '../helpers.js';

// Seed 003's host: eth0 management (default route), eth1 the FTP dropbox with its own router.
function facts(): HostFacts {
  return {
    links: [
      { index: 1, name: 'lo', up: true, loopback: true },
      { index: 2, name: 'eth0', up: true },
      { index: 3, name: 'eth1', up: true },
    ],
    addrs: [
      { dev: 'lo', family: 4, local: '127.0.0.1', prefix: 8 },
      { dev: 'eth0', family: 4, local: '192.168.1.50', prefix: 24 },
      { dev: 'eth1', family: 4, local: '203.0.113.10', prefix: 24 },
    ],
    routes: [{ dst: 'default', table: 254, type: 'unicast', dev: 'eth0', gateway: '192.168.1.1' }],
    rules: [{ priority: 0, table: 255 }, { priority: 32766, table: 254 }],
    netns: [],
  };
}

const profile = (extra: Record<string, string> = {}) => resolveProfile('ftp', undefined, { mode: 'replies', dev: 'eth1', via: '203.0.113.1', ...extra });

describe('replies mode: profile', () => {
  it('takes --dev and --via', () => {
    expect(profile()).toMatchObject({ name: 'ftp', mode: 'replies', dev: 'eth1', via: '203.0.113.1' });
  });
  it('refuses a missing --dev or --via, and the options of other modes', () => {
    expect(catchUserError(() => resolveProfile('ftp', undefined, { mode: 'replies', via: '203.0.113.1' })).message).toMatch(/needs --dev/);
    expect(catchUserError(() => resolveProfile('ftp', undefined, { mode: 'replies', dev: 'eth1' })).message).toMatch(/needs --via/);
    for (const [k, v] of [['dns', ['1.1.1.1']], ['subnet', '10.231.0.0/30'], ['ipv6', 'nat'], ['uplink', 'eth1'], ['address', '10.0.0.2/24']] as const) {
      expect(catchUserError(() => resolveProfile('ftp', undefined, { mode: 'replies', dev: 'eth1', via: '203.0.113.1', [k]: v })).message).toMatch(/does not apply to --mode replies/);
    }
  });
});

describe('replies mode: plan', () => {
  it('an uplink table and rule from the uplink scheme, then the nft marking; no namespace', () => {
    const plan = buildRepliesPlan(profile(), facts(), []);
    const uplink = { via: '203.0.113.1', dev: 'eth1', table: TABLE_BASE + 1, mark: MARK_BASE + 1, pref: RULE_PREF };
    expect(plan.config).toMatchObject({ name: 'ftp', mode: 'replies', uplink });
    expect(plan.steps).toEqual([
      { kind: 'uplink-route', uplink },
      { kind: 'replies-mark', dev: 'eth1', mark: MARK_BASE + 1 },
    ]);
    // Never the base mark the fail-closed rules let through, and no guard rules of its own.
    expect(plan.config.uplink!.mark).not.toBe(MARK_BASE);
    expect(renderGuardRules([plan.config])).toEqual({ v4: [], v6: [] });
  });
  it('shares the table and mark of a namespace on the same gateway and device', () => {
    const nat = { name: 'slow', mode: 'nat', uplink: { via: '203.0.113.1', dev: 'eth1', table: TABLE_BASE + 3, mark: MARK_BASE + 3, pref: RULE_PREF } } as NamespaceConfig;
    expect(buildRepliesPlan(profile(), facts(), [nat]).config.uplink).toEqual(nat.uplink);
  });
  it('refuses a gateway off the link, a missing or loopback device, a second policy on the device', () => {
    expect(catchUserError(() => buildRepliesPlan(profile({ via: '192.168.1.1' }), facts(), [])).message).toMatch(/not on eth1's networks/);
    expect(catchUserError(() => buildRepliesPlan(profile({ dev: 'eth9' }), facts(), [])).message).toMatch(/does not exist/);
    expect(catchUserError(() => buildRepliesPlan(profile({ dev: 'lo' }), facts(), [])).message).toMatch(/loopback/);
    const other = buildRepliesPlan(resolveProfile('other', undefined, { mode: 'replies', dev: 'eth1', via: '203.0.113.1' }), facts(), []).config;
    expect(catchUserError(() => buildRepliesPlan(profile(), facts(), [other])).message).toMatch(/already routed by other/);
  });
  it('conflicts: other via or dev', () => {
    const c = buildRepliesPlan(profile(), facts(), []).config;
    expect(repliesConflicts(profile(), c)).toEqual([]);
    expect(repliesConflicts(profile({ via: '203.0.113.2' }), c)).toEqual(['via 203.0.113.1']);
    expect(repliesConflicts(resolveProfile('ftp', undefined, { dns: ['1.1.1.1'] }), c)).toEqual(['mode replies, without dns']);
  });
});

describe('replies mode: nft and check', () => {
  it('renders the replies objects only while a policy exists', () => {
    expect(renderNftRuleset([])).not.toContain('replies');
    const text = renderNftRuleset([], [{ dev: 'eth1', mark: 0x6e720001 }]);
    expect(text).toContain('map replies_mark { type ifname : mark; elements = { "eth1" : 0x6e720001 }; }');
    expect(text).toContain('ct state new fib daddr type local ct mark set iifname map @replies_mark');
    expect(text).toContain('type route hook output priority mangle');
  });
  it('nftHasReplies reads `nft -j` output', () => {
    const json = {
      nftables: [
        { map: { family: 'inet', table: 'nsroute', name: 'replies_mark', elem: [['eth1', 0x6e720001]] } },
        { chain: { family: 'inet', table: 'nsroute', name: 'replies_in' } },
        { chain: { family: 'inet', table: 'nsroute', name: 'replies_out' } },
      ],
    };
    expect(nftHasReplies(json, 'eth1', 0x6e720001)).toBe(true);
    expect(nftHasReplies(json, 'eth0', 0x6e720001)).toBe(false);
    expect(nftHasReplies({ nftables: json.nftables.slice(0, 2) }, 'eth1', 0x6e720001)).toBe(false);
  });
  it('check: a flushed table is a leak; rp_filter without src_valid_mark fails', () => {
    const config = buildRepliesPlan(profile(), facts(), []).config;
    const u = config.uplink!;
    const ok = (stdout: string) => ({ exitCode: 0, stdout, stderr: '' });
    const f: RepliesFacts = {
      config,
      route: ok(JSON.stringify([{ dev: 'eth1', gateway: '203.0.113.1' }])),
      rules: ok(JSON.stringify([{ priority: u.pref, src: 'all', fwmark: `0x${u.mark.toString(16)}`, table: String(u.table) }])),
      table: ok(JSON.stringify([{ type: 'unreachable', dst: 'default', metric: 4278190080 }])),
      nft: ok(JSON.stringify({ nftables: [
        { map: { family: 'inet', table: 'nsroute', name: 'replies_mark', elem: [['eth1', u.mark]] } },
        { chain: { family: 'inet', table: 'nsroute', name: 'replies_in' } },
        { chain: { family: 'inet', table: 'nsroute', name: 'replies_out' } },
      ] })),
      rpFilter: { all: '1', dev: '1', srcValidMark: '1' },
    };
    expect(evaluateReplies(f)).toMatchObject({ ok: true, leak: false });
    const flushed = evaluateReplies({ ...f, nft: { exitCode: 1, stdout: '', stderr: 'No such file or directory' } });
    expect(flushed).toMatchObject({ ok: false, leak: true });
    expect(flushed.checks.find((c) => c.id === 'marks')?.ok).toBe(false);
    expect(evaluateReplies({ ...f, rpFilter: { all: '1', dev: '0', srcValidMark: '0' } }).checks.find((c) => c.id === 'rp_filter')?.ok).toBe(false);
  });
});
