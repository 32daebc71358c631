import { describe, expect, it } from 'vitest';
import { buildPlan } from '../../../src/plan/plan.js';
import { resolveProfile } from '../../../src/profile/profile.js';
import { renderCgAdd, renderCgDelete, renderCgRuleset } from '../../../src/net/cgnft.js';
import { cgroup2Mount, cgroupParent } from '../../../src/sys/cgroup.js';
import type { HostFacts } from '../../../src/plan/types.js';

function facts(over: Partial<HostFacts> = {}): HostFacts {
  return {
    links: [{ name: 'eth0', up: true } as HostFacts['links'][number], { name: 'eth1', up: true } as HostFacts['links'][number]],
    addrs: [
      { dev: 'eth0', family: 4, local: '192.168.1.10', prefix: 24 } as HostFacts['addrs'][number],
      { dev: 'eth1', family: 4, local: '192.168.2.10', prefix: 24 } as HostFacts['addrs'][number],
    ],
    routes: [{ dst: 'default', table: 254, gateway: '192.168.1.1', dev: 'eth0' } as HostFacts['routes'][number]],
    rules: [],
    netns: [],
    hostResolvConf: 'nameserver 127.0.0.53\n',
    cgroupHost: { mount: '/sys/fs/cgroup', parent: 'nsroute', systemd: false },
    ...over,
  };
}

const cg = (flags: Record<string, unknown>) => resolveProfile('vpn', undefined, { mode: 'cgroup', ...flags });

describe('cgroup planner', () => {
  it('plans the cgroup, files, uplink table and rule, route_localnet and nft elements, in that order', () => {
    const plan = buildPlan(cg({ via: '192.168.2.1', dns: ['192.168.2.53'] }), facts(), []);
    expect(plan.steps.map((s) => s.kind)).toEqual(['cgroup-dir', 'netns-files', 'uplink-route', 'cgroup-localnet', 'cgroup-nft']);
    expect(plan.config).toMatchObject({ mode: 'cgroup', cgroup: { path: 'nsroute/vpn', level: 2 }, uplink: { via: '192.168.2.1', dev: 'eth1' }, dns: ['192.168.2.53'] });
    expect(plan.steps.at(-1)).toMatchObject({ kind: 'cgroup-nft', path: 'nsroute/vpn', level: 2, mark: plan.config.uplink!.mark, dns: '192.168.2.53', ipv6: 'off' });
  });

  it('shares the uplink table and mark with a nat namespace on the same gateway', () => {
    const nat = buildPlan(resolveProfile('a', undefined, { via: '192.168.2.1' }), facts(), []);
    const plan = buildPlan(cg({ via: '192.168.2.1' }), facts(), [nat.config]);
    expect(plan.config.uplink).toEqual(nat.config.uplink);
  });

  it('refuses a host without cgroup v2, and a systemd host without a delegated parent', () => {
    expect(() => buildPlan(cg({ via: '192.168.2.1' }), facts({ cgroupHost: { parent: 'nsroute', systemd: false } }), [])).toThrow(/needs cgroup v2/);
    expect(() => buildPlan(cg({ via: '192.168.2.1' }), facts({ cgroupHost: { mount: '/sys/fs/cgroup', parent: 'nsroute', systemd: true } }), [])).toThrow(/systemd/);
  });

  it('refuses options of other modes with the reason', () => {
    expect(() => cg({ subnet: '10.231.0.0/30' })).toThrow(/does not apply to --mode cgroup/);
    expect(() => cg({ uplink: 'eth0' })).toThrow(/bridge or macvlan/);
  });
});

describe('cgroup nft table', () => {
  it('is one map lookup per rule whatever the number of NAMEs', () => {
    const one = renderCgRuleset(2, [{ path: 'nsroute/a', mark: 0x6e720001, dns: '1.1.1.1', ipv6: 'off' }]);
    const many = renderCgRuleset(2, Array.from({ length: 50 }, (_, i) => ({ path: `nsroute/n${i}`, mark: 0x6e720001, dns: '1.1.1.1', ipv6: 'off' as const })));
    const rules = (t: string) => t.split('\n').filter((l) => /^\t\t[a-z]/.test(l) && !l.includes('type ') && !l.startsWith('\t\telements'));
    expect(rules(many)).toEqual(rules(one));
  });

  it('adds and deletes exactly one NAME\'s elements', () => {
    const m = { path: 'nsroute/a', mark: 0x6e720001, dns: '1.1.1.1', ipv6: 'off' as const };
    expect(renderCgAdd(m)).toContain('add element inet nsroute_cgroup cg_mark { "nsroute/a" : 0x6e720001 }');
    expect(renderCgDelete(m).split('\n').filter(Boolean)).toHaveLength(4);
  });
});

describe('cgroup host facts', () => {
  it('finds the v2 mount on pure and hybrid layouts', () => {
    const line = (mp: string, fs: string) => `30 20 0:26 / ${mp} rw,nosuid shared:9 - ${fs} ${fs} rw`;
    expect(cgroup2Mount([line('/sys/fs/cgroup', 'cgroup2')].join('\n'))).toBe('/sys/fs/cgroup');
    expect(cgroup2Mount([line('/sys/fs/cgroup', 'tmpfs'), line('/sys/fs/cgroup/unified', 'cgroup2')].join('\n'))).toBe('/sys/fs/cgroup/unified');
    expect(cgroup2Mount(line('/sys/fs/cgroup/memory', 'cgroup'))).toBeUndefined();
  });

  it('takes a cgroup parent of plain components only', () => {
    expect(cgroupParent({})).toBe('nsroute');
    expect(cgroupParent({ NSROUTE_CGROUP_PARENT: 'nt12-cg' })).toBe('nt12-cg');
    for (const bad of ['../x', '/abs', 'a//b', 'a/./b', 'a b']) expect(() => cgroupParent({ NSROUTE_CGROUP_PARENT: bad })).toThrow(/not a cgroup path/);
  });
});
