import { describe, expect, it } from 'vitest';
import { DEFAULT_IDS } from '../../../src/net/ids.js';
import { findClashes, nftMarkOps, parseRuleJson, suggestIds } from '../../../src/doctor/clash.js';
import { KERNEL_PROBES, cgroup2Mount, evaluateDoctor, renderDoctor, type DoctorFacts } from '../../../src/doctor/evaluate.js';
import { parseProbes } from '../../../src/doctor/gather.js';

const ids = DEFAULT_IDS;
const stdRules = [
  { priority: 0, src: 'all', table: 'local' },
  { priority: 32766, src: 'all', table: 'main' },
  { priority: 32767, src: 'all', table: 'default' },
];
const ours = [
  { priority: 4200, src: 'all', fwmark: '0x6e720001', table: '7101' },
  // The fail-closed rules (plan/guard.ts), as `ip -j rule show` prints them.
  { priority: 4201, src: 'all', iif: 'lo', goto: 4203 },
  { priority: 4201, src: 'all', fwmark: '0x6e720000', goto: 4203 },
  { priority: 4202, src: '10.231.0.0', srclen: 28, action: 'unreachable' },
  { priority: 4203, src: 'all', nop: null },
];

function facts(over: Partial<DoctorFacts> = {}): DoctorFacts {
  return {
    nodeVersion: 'v20.20.2',
    tools: { ip: 'ip utility, iproute2-6.1.0', nft: 'nftables v1.0.6', nsenter: '/usr/bin/nsenter', setpriv: '/usr/bin/setpriv', tc: 'tc', udhcpc: '/usr/sbin/udhcpc', iptables: 'iptables v1.8.9', systemctl: '/usr/bin/systemctl' },
    probes: Object.fromEntries(KERNEL_PROBES.map((p) => [p, { ok: true }])),
    mounts: 'cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n',
    systemdRunning: true,
    resolvConf: 'nameserver 192.168.1.1\n',
    nscdSocket: false,
    rules4: [...stdRules, ...ours],
    rules6: stdRules,
    routes4: [{ dst: 'default', gateway: '192.168.1.1', dev: 'eth0' }, { type: 'unreachable', dst: 'default', table: '7101', metric: 4278190080 }],
    routes6: [],
    nftText: '',
    nftJson: { nftables: [] },
    iptablesForward: [],
    sysctls: { 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0', 'net.ipv4.ip_forward': '0' },
    ids,
    idsConf: {},
    ...over,
  };
}
const statusOf = (f: DoctorFacts, id: string) => evaluateDoctor(f).checks.find((c) => c.id === id)?.status;

describe('doctor: what nsroute needs', () => {
  it('a healthy machine is ok, with nsroute\'s own rules and tables not counted as clashes', () => {
    const r = evaluateDoctor(facts());
    expect(r.checks.filter((c) => c.status === 'fail' || c.status === 'warn')).toEqual([]);
    expect(r.ok).toBe(true);
    expect(renderDoctor(r)).toMatch(/nsroute can work on this machine\.\n$/);
  });
  it('fails without a required tool or kernel feature, warns for optional ones', () => {
    expect(evaluateDoctor(facts({ tools: { ...facts().tools, nft: null } })).ok).toBe(false);
    expect(statusOf(facts({ tools: { ...facts().tools, udhcpc: null } }), 'tool:udhcpc')).toBe('warn');
    const noNat = facts({ probes: { ...facts().probes, 'nft-nat': { ok: false, error: 'Error: Could not process rule: No such file or directory' } } });
    expect(evaluateDoctor(noNat).ok).toBe(false);
    expect(renderDoctor(evaluateDoctor(noNat))).toContain('fix: modprobe nft_chain_nat');
    expect(statusOf(facts({ probes: { ...facts().probes, macvlan: { ok: false, error: 'x' } } }), 'kernel:macvlan')).toBe('warn');
    expect(evaluateDoctor(facts({ nodeVersion: 'v18.19.0' })).ok).toBe(false);
  });
  it('without network namespaces, every other probe says it was not tried', () => {
    const r = evaluateDoctor(facts({ probes: { netns: { ok: false, error: 'unshare: unshare failed: Operation not permitted' } } }));
    expect(r.ok).toBe(false);
    expect(r.checks.find((c) => c.id === 'kernel:veth')?.summary).toContain('not tried');
  });
  it('parses the probe script output', () => {
    expect(parseProbes('netns ok\nveth fail Error: Unknown device type.\nnonsense ok\n')).toEqual({ netns: { ok: true }, veth: { ok: false, error: 'Error: Unknown device type.' } });
  });
  it('cgroup v2: unified, hybrid, none', () => {
    expect(cgroup2Mount('cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0')).toBe('/sys/fs/cgroup/unified');
    expect(statusOf(facts({ mounts: 'cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0' }), 'cgroup2')).toBe('info');
    expect(statusOf(facts({ mounts: '' }), 'cgroup2')).toBe('warn');
  });
  it('DNS: a resolved stub is explained, a stub with no known upstream is a warning', () => {
    const stub = 'nameserver 127.0.0.53\noptions edns0 trust-ad\n';
    expect(statusOf(facts({ resolvConf: stub, resolvedUpstreams: 'nameserver 10.0.0.1\n' }), 'dns')).toBe('info');
    expect(statusOf(facts({ resolvConf: stub }), 'dns')).toBe('warn');
    expect(statusOf(facts({ nscdSocket: true }), 'dns-daemons')).toBe('info');
  });
  it('other firewalls: Docker\'s FORWARD DROP and a hardened nft forward chain are explained', () => {
    const r = evaluateDoctor(facts({
      iptablesForward: [{ bin: 'iptables-nft', lines: ['-P FORWARD DROP', '-A FORWARD -j DOCKER-USER'] }],
      nftJson: { nftables: [{ chain: { family: 'inet', table: 'filter', name: 'forward', hook: 'forward', policy: 'drop' } }] },
    }));
    expect(r.checks.find((c) => c.id === 'firewall:iptables-nft')?.summary).toContain('(Docker)');
    expect(r.checks.find((c) => c.id === 'firewall:nft inet filter forward')?.status).toBe('info');
  });
  it('rp_filter strict is explained', () => {
    expect(statusOf(facts({ sysctls: { 'net.ipv4.conf.all.rp_filter': '1' } }), 'rp_filter')).toBe('info');
  });
  it('a bad nsroute.conf fails', () => {
    expect(statusOf(facts({ idsConf: { error: '/etc/nsroute/nsroute.conf: unknown key x' } }), 'ids:config')).toBe('fail');
  });
});

// Recorded from real tools' rule sets (Tailscale 1.7x, wg-quick, Mullvad 2024, Calico, Cilium).
const TAILSCALE_RULES = [
  { priority: 5210, src: 'all', fwmark: '0x80000', fwmask: '0xff0000', table: 'main' },
  { priority: 5230, src: 'all', fwmark: '0x80000', fwmask: '0xff0000', table: 'default' },
  { priority: 5250, src: 'all', fwmark: '0x80000', fwmask: '0xff0000', action: 'unreachable' },
  { priority: 5270, src: 'all', table: '52' },
];
const TAILSCALE_NFT = `table ip ts-forward-table {
\tchain ts-forward {
\t\tiifname "tailscale0*" meta mark set meta mark & 0xff04ffff | 0x00040000
\t\tmeta mark & 0x00ff0000 == 0x00040000 accept
\t}
}`;
const WG_RULES = [{ priority: 32764, src: 'all', table: 'main', suppress_prefixlen: 0 }, { priority: 32765, not: null, src: 'all', fwmark: '0xca6c', table: '51820' }];
const MULLVAD_NFT = `table inet mullvad {
\tchain output {
\t\tmeta mark 0x6d6f6c65 accept
\t\tct mark 0x00000f41 accept
\t}
\tchain mangle {
\t\tct mark set 0x00000f41 meta mark set 0x6d6f6c65
\t}
}`;

describe('doctor: ids other tools use', () => {
  const rules = (extra: object[]) => parseRuleJson([...stdRules, ...ours, ...extra], 4);
  it('Tailscale, wg-quick and Mullvad as installed by default do not take nsroute\'s packets, but their mark rewrites are named', () => {
    expect(findClashes(rules([...TAILSCALE_RULES, ...WG_RULES]), new Set([52, 51820, 7101]), '', ids)).toEqual([]);
    const ts = findClashes(rules(TAILSCALE_RULES), new Set(), TAILSCALE_NFT, ids);
    expect(ts).toEqual([expect.objectContaining({ level: 'warn', what: 'mark', owner: 'Tailscale' })]);
    expect(ts[0]?.detail).toContain('rewrites mark bits 0x00ff0000');
    const mv = findClashes(rules([]), new Set(), MULLVAD_NFT, ids);
    expect(mv.map((c) => c.owner)).toEqual(['Mullvad', 'Mullvad']);
    expect(mv.every((c) => c.level === 'warn')).toBe(true);
  });
  it("nsroute's own fail-closed rules are no clash, but a look-alike of another tool's at those priorities is", () => {
    expect(findClashes(rules([]), new Set([7101]), '', ids)).toEqual([]);
    const other = findClashes(rules([{ priority: 4203, src: 'all', table: '300' }]), new Set([300]), '', ids);
    expect(other).toEqual([expect.objectContaining({ what: 'rule' })]);
  });
  it('a rule before nsroute\'s that matches its marks fails; one after only warns', () => {
    const before = findClashes(rules([{ priority: 100, src: 'all', fwmark: '0x6e720000', fwmask: '0xffff0000', table: '200' }]), new Set(), '', ids);
    expect(before).toEqual([expect.objectContaining({ level: 'fail', what: 'mark' })]);
    const after = findClashes(rules([{ priority: 9000, src: 'all', fwmark: '0x6e720002', table: '200' }]), new Set(), '', ids);
    expect(after).toEqual([expect.objectContaining({ level: 'warn', what: 'mark' })]);
  });
  it('a `not fwmark` or catch-all rule before nsroute\'s is named; one with a selector is not', () => {
    expect(findClashes(rules([{ priority: 100, not: null, src: 'all', fwmark: '0xca6c', table: '51820' }]), new Set(), '', ids)).toEqual([expect.objectContaining({ what: 'rule', owner: 'wg-quick' })]);
    expect(findClashes(rules([{ priority: 100, src: '10.0.0.0', srclen: 8, table: '100' }]), new Set(), '', ids)).toEqual([]);
  });
  it('a packet tagged with nsroute\'s mark tag by another tool fails', () => {
    const c = findClashes(rules([]), new Set(), 'table ip calico {\n\tchain cali-PREROUTING {\n\t\tmeta mark set 0x6e720005\n\t}\n}', ids);
    expect(c).toEqual([expect.objectContaining({ level: 'fail', owner: 'Calico' })]);
  });
  it('tables and priorities in nsroute\'s ranges are named, nsroute\'s own are not', () => {
    const c = findClashes(rules([{ priority: 4202, src: 'all', table: '300' }, { priority: 8000, src: 'all', table: '7150' }]), new Set([7101, 7150, 7160]), '', ids);
    expect(c.map((x) => x.what).sort()).toEqual(['rule', 'table', 'table']);
  });
  it('nft mark operations are read from the ruleset text', () => {
    expect(nftMarkOps(TAILSCALE_NFT)).toEqual([
      expect.objectContaining({ table: 'ip ts-forward-table', chain: 'ts-forward', kind: 'set', value: 0x40000, mask: 0x00ff0000 }),
      expect.objectContaining({ kind: 'match', value: 0x40000, mask: 0x00ff0000 }),
    ]);
    expect(nftMarkOps('table inet x {\n\tchain y {\n\t\tmeta mark set ct mark\n\t}\n}')).toEqual([expect.objectContaining({ copy: true })]);
  });
  it('suggests bases that nothing seen overlaps, and says where to put them', () => {
    const taken = parseRuleJson([...stdRules, { priority: 100, src: 'all', fwmark: '0x6e720000', fwmask: '0xffff0000', table: '7105' }], 4);
    const s = suggestIds(taken, new Set([7105, 8150]), '', ids);
    expect(s.markBase).toBe(0x6e730000);
    expect(s.tableBase).toBe(9100);
    const r = evaluateDoctor(facts({ rules4: [...stdRules, ...ours, { priority: 100, src: 'all', fwmark: '0x6e720000', fwmask: '0xffff0000', table: '200' }] }));
    expect(r.ok).toBe(false);
    expect(r.checks.find((c) => c.id.startsWith('ids:mark'))?.fix).toBe('move nsroute\'s ids: put mark_base = 0x6e730000 in /etc/nsroute/nsroute.conf');
  });
});
