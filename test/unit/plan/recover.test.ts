import { describe, expect, it } from 'vitest';
import { buildPlan } from '../../../src/plan/plan.js';
import { recoverConfig } from '../../../src/plan/recover.js';
import { parseTag } from '../../../src/net/tag.js';
import type { HostFacts } from '../../../src/plan/types.js';

const facts: HostFacts = {
  links: [
    { index: 1, name: 'lo', up: true },
    { index: 2, name: 'eth1', up: true },
  ],
  addrs: [{ dev: 'eth1', family: 4, local: '192.168.2.10', prefix: 24 }],
  routes: [{ dst: 'default', table: 254, type: 'unicast', dev: 'eth1', gateway: '192.168.2.1' }],
  rules: [],
  netns: [],
};

describe('recoverConfig', () => {
  it('rebuilds the config buildPlan made from the tag, the host address and resolv.conf', () => {
    for (const subnet of [undefined, '10.50.0.0/31', '10.60.0.0/29']) {
      const plan = buildPlan({ name: 'slow', dns: ['192.0.2.53', '192.0.2.54'], via: '192.168.2.1', subnet }, facts, [], { persistent: true });
      const veth = plan.steps.find((s) => s.kind === 'veth-add')!;
      const files = plan.steps.find((s) => s.kind === 'netns-files')!;
      const addr = { dev: plan.config.hostIface, family: 4 as const, local: plan.config.hostAddress, prefix: plan.config.prefix };
      const tag = parseTag(veth.kind === 'veth-add' ? veth.tag : '')!;
      const got = recoverConfig(tag, plan.config.hostIface, [addr], files.kind === 'netns-files' ? files.files['resolv.conf'] : '');
      expect(got).toEqual({ ...plan.config, dnsSource: 'recovered' });
    }
  });

  it('rebuilds the IPv6 part of an --ipv6 nat namespace from the tag', () => {
    const f = { ...facts, routes6: [{ dst: 'default', table: 254, type: 'unicast', dev: 'eth1', gateway: 'fe80::1' }] };
    const plan = buildPlan({ name: 'six', dns: ['192.0.2.53'], via: '192.168.2.1', ipv6: 'nat' }, f, []);
    const veth = plan.steps.find((s) => s.kind === 'veth-add')!;
    const files = plan.steps.find((s) => s.kind === 'netns-files')!;
    const addr = { dev: plan.config.hostIface, family: 4 as const, local: plan.config.hostAddress, prefix: plan.config.prefix };
    const got = recoverConfig(parseTag(veth.kind === 'veth-add' ? veth.tag : '')!, plan.config.hostIface, [addr], files.kind === 'netns-files' ? files.files['resolv.conf'] : '');
    expect(got).toEqual({ ...plan.config, dnsSource: 'recovered' });
  });

  it('gives up when the host end has no address, several, or not the host end of its block', () => {
    const tag = { name: 'slow', persistent: false };
    expect(recoverConfig(tag, 'nsr-slow', [], undefined)).toBeUndefined();
    const a = { dev: 'nsr-slow', family: 4 as const, local: '10.231.0.1', prefix: 30 };
    expect(recoverConfig(tag, 'nsr-slow', [a, { ...a, local: '10.231.0.5' }], undefined)).toBeUndefined();
    expect(recoverConfig(tag, 'nsr-slow', [{ ...a, local: '10.231.0.2' }], undefined)).toBeUndefined();
    expect(recoverConfig(tag, 'nsr-slow', [{ ...a, prefix: 32 }], undefined)).toBeUndefined();
  });

  it('reads no name servers from a missing resolv.conf rather than guessing', () => {
    const a = { dev: 'nsr-slow', family: 4 as const, local: '10.231.0.1', prefix: 30 };
    expect(recoverConfig({ name: 'slow', persistent: false }, 'nsr-slow', [a], undefined)?.dns).toEqual([]);
  });
});
