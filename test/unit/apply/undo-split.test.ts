// The teardown's two batches (apply.ts namespaceFirst): the namespace first, the veth after.
import { describe, expect, it } from 'vitest';
import { namespaceFirst } from '../../../src/apply/apply.js';
import type { Step } from '../../../src/plan/types.js';

const UPLINK = { via: '10.99.2.1', dev: 'ups', table: 7101, mark: 0x6e720001, pref: 4200 };
// A nat plan's steps (plan.ts stepsFor) and the undo lines executors.ts undoHostLines gives them.
const STEPS: Step[] = [
  { kind: 'netns-add', name: 'slow' },
  { kind: 'route-guard' },
  { kind: 'veth-add', netns: 'slow', hostIface: 'nsr-slow', nsIface: 'eth0', hostCidr: '10.231.0.1/30', tag: 'nsroute:ns=slow:persistent=0', uplinkTable: 7101, subnet: '10.231.0.0/30' },
  { kind: 'ns-config', netns: 'slow', nsIface: 'eth0', nsCidr: '10.231.0.2/30', gateway: '10.231.0.1' },
  { kind: 'netns-files', netns: 'slow', files: {} },
  { kind: 'ip-forward' },
  { kind: 'uplink-route', uplink: UPLINK },
  { kind: 'fw-holes' },
  { kind: 'nft-member', iface: 'nsr-slow', subnet: '10.231.0.0/30', mark: UPLINK.mark },
];
const LINES = [['netns del slow'], ['rule del pref 4202 from 10.231.0.0/30 unreachable'], ['link del dev nsr-slow'], [], [], [], ['rule del pref 4200 fwmark 0x6e720001 lookup 7101', 'route flush table 7101'], [], []];
const LAST = 6; // the last step with lines
const TAGGED = new Map([['nsr-slow', 'tag' as const]]);

describe('namespaceFirst', () => {
  it('deletes the namespace first, with the uplink; the veth and the fail-closed rules after', () => {
    expect(namespaceFirst(STEPS, LINES, LAST, TAGGED)).toEqual({
      first: ['netns del slow', 'rule del pref 4200 fwmark 0x6e720001 lookup 7101', 'route flush table 7101'],
      then: ['link del dev nsr-slow', 'rule del pref 4202 from 10.231.0.0/30 unreachable'],
      veth: 2,
    });
  });

  it('keeps every line but the namespace\'s, once, in reverse order of creation within each batch', () => {
    const split = namespaceFirst(STEPS, LINES, LAST, TAGGED)!;
    expect([...split.first, ...split.then].sort()).toEqual(LINES.flat().sort());
  });

  it('is one batch (undefined) when the namespace or the veth is not to be deleted, or the veth is not tagged as NAME\'s', () => {
    const without = (k: number) => LINES.map((l, i) => (i === k ? [] : l));
    expect(namespaceFirst(STEPS, without(0), LAST, TAGGED)).toBeUndefined();
    expect(namespaceFirst(STEPS, without(2), LAST, TAGGED)).toBeUndefined();
    expect(namespaceFirst(STEPS, LINES, LAST, new Map([['nsr-slow', 'peer' as const]]))).toBeUndefined();
  });

  it('is one batch when a fail-closed rule step comes after the veth', () => {
    const steps = [...STEPS.slice(0, 1), ...STEPS.slice(2), { kind: 'route-guard' } as Step];
    const lines = [...LINES.slice(0, 1), ...LINES.slice(2), ['rule del pref 4202 from 10.231.0.0/30 unreachable']];
    expect(namespaceFirst(steps, lines, lines.length - 1, TAGGED)).toBeUndefined();
  });

  it('without an uplink (no fail-closed rule covers it): the veth is set down first', () => {
    const steps = STEPS.filter((s) => s.kind !== 'uplink-route').map((s) => (s.kind === 'veth-add' ? { ...s, uplinkTable: undefined, subnet: undefined } : s));
    const lines = LINES.filter((_, i) => i !== 6);
    expect(namespaceFirst(steps, lines, 2, TAGGED)).toEqual({ first: ['link set dev nsr-slow down', 'netns del slow'], then: ['link del dev nsr-slow', 'rule del pref 4202 from 10.231.0.0/30 unreachable'], veth: 2 });
  });
});
