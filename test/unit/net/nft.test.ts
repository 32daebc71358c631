import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hex, HOST_MARK, nftHasMember, renderNftAdd, renderNftDelete, renderNftRuleset, type NftMember } from '../../../src/net/nft.js';

const HEAD = 'table inet nsroute {}\ndelete table inet nsroute\n';

const A: NftMember = { iface: 'nsr-alpha', subnet: '10.231.0.0/30', mark: 0x6e720001 };
const B: NftMember = { iface: 'nsr-bravo', subnet: '10.231.0.4/30' };
const C: NftMember = { iface: 'nsr.long.1a2b3c', subnet: '172.29.0.8/31', mark: 0x6e720002 };

function line(text: string, startsWith: string): string {
  const found = text.split('\n').find((l) => l.trim().startsWith(startsWith));
  if (found === undefined) throw new Error(`no line starting with ${startsWith} in:\n${text}`);
  return found.trim();
}

describe('hex', () => {
  it('renders marks as 0x + 8 hex digits', () => {
    expect(hex(0x6e720001)).toBe('0x6e720001');
    expect(hex(1)).toBe('0x00000001');
  });
});

describe('renderNftAdd / renderNftDelete (one namespace, O(1) in the others)', () => {
  it('adds exactly the namespace\'s elements, the host mark when it has none', () => {
    expect(renderNftAdd(B)).toBe(
      ['add element inet nsroute ns_ifaces { "nsr-bravo" }', 'add element inet nsroute ns_nets4 { 10.231.0.4/30 }', `add element inet nsroute uplink_mark { "nsr-bravo" : ${hex(HOST_MARK)} }`, ''].join('\n'),
    );
    expect(renderNftAdd({ ...A, subnet6: 'fd6e:7372:ae7:0::/64' })).toContain('add element inet nsroute ns_nets6 { fd6e:7372:ae7:0::/64 }');
    expect(renderNftAdd(A)).toContain('uplink_mark { "nsr-alpha" : 0x6e720001 }');
  });

  it('deletes the same elements, the map by key', () => {
    const del = renderNftDelete({ ...A, subnet6: 'fd6e:7372:ae7:0::/64' });
    expect(del.trim().split('\n')).toEqual([
      'delete element inet nsroute uplink_mark { "nsr-alpha" }',
      'delete element inet nsroute ns_nets6 { fd6e:7372:ae7:0::/64 }',
      'delete element inet nsroute ns_nets4 { 10.231.0.0/30 }',
      'delete element inet nsroute ns_ifaces { "nsr-alpha" }',
    ]);
  });

  it('nftHasMember looks at the interface set of nsroute\'s table only', () => {
    const json = { nftables: [{ set: { family: 'inet', table: 'nsroute', name: 'ns_ifaces', elem: ['nsr-alpha'] } }, { set: { family: 'inet', table: 'other', name: 'ns_ifaces', elem: ['nsr-bravo'] } }] };
    expect(nftHasMember(json, 'nsr-alpha')).toBe(true);
    expect(nftHasMember(json, 'nsr-bravo')).toBe(false);
    expect(nftHasMember(undefined, 'nsr-alpha')).toBe(false);
  });
});

describe('renderNftRuleset', () => {
  it('always starts by creating then deleting the table (idempotent replace)', () => {
    expect(renderNftRuleset([A]).startsWith(HEAD)).toBe(true);
  });

  it('renders only the removal when there are no members', () => {
    expect(renderNftRuleset([])).toBe(HEAD);
  });

  it('puts every member in the interface and subnet sets', () => {
    const text = renderNftRuleset([A, B, C]);
    expect(line(text, 'set ns_ifaces')).toBe('set ns_ifaces { type ifname; elements = { "nsr-alpha", "nsr-bravo", "nsr.long.1a2b3c" }; }');
    expect(line(text, 'set ns_nets4')).toBe('set ns_nets4 { type ipv4_addr; flags interval; elements = { 10.231.0.0/30, 10.231.0.4/30, 172.29.0.8/31 }; }');
  });

  it("maps each member to its uplink's mark, and members without an uplink to the host mark", () => {
    const text = renderNftRuleset([A, B, C]);
    // The host mark lets traffic of a namespace without --via past the fail-closed rule (plan/guard.ts).
    expect(line(text, 'map uplink_mark')).toBe(
      'map uplink_mark { type ifname : mark; elements = { "nsr-alpha" : 0x6e720001, "nsr-bravo" : 0x6e720000, "nsr.long.1a2b3c" : 0x6e720002 }; }',
    );
  });

  it('has no elements clause in a set or map that would be empty', () => {
    const text = renderNftRuleset([{ ...B, subnet6: undefined }]);
    expect(line(text, 'set ns_nets6')).toBe('set ns_nets6 { type ipv6_addr; flags interval; }');
    expect(line(text, 'set ns_ifaces')).toContain('elements = { "nsr-bravo" }');
  });

  it('sorts members, so the text does not depend on the order of the run dir', () => {
    const want = renderNftRuleset([A, B, C]);
    expect(renderNftRuleset([C, B, A])).toBe(want);
    expect(renderNftRuleset([B, C, A])).toBe(want);
    // and the subnets stay paired with their interface's position
    expect(line(renderNftRuleset([B, A]), 'set ns_nets4')).toContain('10.231.0.0/30, 10.231.0.4/30');
  });

  it('marks in prerouting and masquerades namespace traffic that leaves by a non-namespace interface', () => {
    const text = renderNftRuleset([A]);
    expect(text).toMatch(
      /chain prerouting \{\s*type filter hook prerouting priority mangle; policy accept;\s*ct direction original meta mark set iifname map @uplink_mark ct mark set meta mark\s*ct direction reply ct mark & 0xffff0000 == 0x6e720000 meta mark set ct mark\s*\}/,
    );
    expect(text).toMatch(
      /chain postrouting \{\s*type nat hook postrouting priority srcnat; policy accept;\s*ip saddr @ns_nets4 oifname != @ns_ifaces masquerade\s*ip6 saddr @ns_nets6 oifname != @ns_ifaces masquerade\s*\}/,
    );
  });

  it('puts IPv6 blocks of --ipv6 nat members in ns_nets6', () => {
    const text = renderNftRuleset([A, { ...B, subnet6: 'fd6e:7372:ae7:4::/64' }]);
    expect(line(text, 'set ns_nets6')).toBe('set ns_nets6 { type ipv6_addr; flags interval; elements = { fd6e:7372:ae7:4::/64 }; }');
    expect(line(renderNftRuleset([A]), 'set ns_nets6')).toBe('set ns_nets6 { type ipv6_addr; flags interval; }');
  });
});

// The rendered text is checked by nft itself (`nft -c`: parse + kernel validation, no commit),
// only inside a throwaway namespace so the host's ruleset is never involved.
function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}
const canCheck = process.platform === 'linux' && process.getuid?.() === 0 && which('nft') && which('ip');

describe.skipIf(!canCheck)('renderNftRuleset accepted by nft -c (in a scratch netns)', () => {
  const ns = `ut-${randomBytes(4).toString('hex')}`;
  let created = false;

  beforeAll(() => {
    const r = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip netns add ${ns}: ${r.stderr}`);
    created = true;
  });

  afterAll(() => {
    if (created) spawnSync('ip', ['netns', 'del', ns]);
  });

  function nftCheck(text: string): { status: number | null; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', '-'], { input: text, encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  }

  it('rejects a broken ruleset (the check can fail)', () => {
    expect(nftCheck(renderNftRuleset([A]).replace('masquerade', 'masquerade bogus')).status).not.toBe(0);
  });

  it.each([
    ['removal only', [] as NftMember[]],
    ['one member without mark (empty map)', [B]],
    ['one member with mark', [A]],
    ['mixed members, hashed name, /31', [A, B, C]],
    ['an IPv6 member', [{ ...A, subnet6: 'fd6e:7372:ae7:0::/64' }, B]],
  ])('accepts %s', (_label, members) => {
    const r = nftCheck(renderNftRuleset(members));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  // Applied for real in the scratch namespace: adding and deleting members one at a time
  // leaves exactly the table a whole render of the same members gives.
  function nftRun(text: string): { status: number | null; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: text, encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  }
  function table(): string {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'table', 'inet', 'nsroute'], { encoding: 'utf8' });
    if (r.status !== 0) return `absent: ${r.stderr.trim()}`;
    // Elements sorted (a hash set lists them in any order), handles dropped.
    const items = (JSON.parse(r.stdout) as { nftables: Record<string, Record<string, unknown>>[] }).nftables.flatMap((it) =>
      Object.entries(it).map(([k, v]) => {
        const { handle: _h, ...rest } = v;
        if (Array.isArray(rest.elem)) rest.elem = (rest.elem as unknown[]).map((e) => JSON.stringify(e)).sort();
        return JSON.stringify([k, rest]);
      }),
    );
    return items.sort().join('\n');
  }
  function whole(members: NftMember[]): string {
    expect(nftRun(renderNftRuleset(members)).status).toBe(0);
    return table();
  }

  it('incremental add/delete keeps the table equal to a whole render', () => {
    const A6 = { ...A, subnet6: 'fd6e:7372:ae7:0::/64' };
    const want = { a: whole([A6]), ab: whole([A6, B]), abc: whole([A6, B, C]), bc: whole([B, C]), c: whole([C]) };
    expect(nftRun(renderNftRuleset([A6])).status).toBe(0);
    expect(table()).toBe(want.a);
    expect(nftRun(renderNftAdd(B)).stderr).toBe('');
    expect(table()).toBe(want.ab);
    expect(nftRun(renderNftAdd(C)).status).toBe(0);
    expect(table()).toBe(want.abc);
    expect(nftRun(renderNftAdd(C)).status, 'adding again changes nothing').toBe(0);
    expect(table()).toBe(want.abc);
    expect(nftRun(renderNftDelete(A6)).stderr).toBe('');
    expect(table()).toBe(want.bc);
    expect(nftRun(renderNftDelete(A6)).status, 'deleting a missing member fails as a whole').not.toBe(0);
    expect(table()).toBe(want.bc);
    expect(nftRun(renderNftDelete(B)).status).toBe(0);
    expect(table()).toBe(want.c);
    expect(nftRun(renderNftRuleset([])).status).toBe(0);
    expect(nftRun(renderNftAdd(B)).status, 'adding to a missing table fails (the caller renders it whole)').not.toBe(0);
    expect(table()).toMatch(/^absent/);
  });

  it('left the scratch namespace\'s ruleset empty (check mode commits nothing)', () => {
    nftRun(renderNftRuleset([]));
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('');
  });
});
