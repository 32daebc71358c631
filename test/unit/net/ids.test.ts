import { describe, expect, it } from 'vitest';
import { DEFAULT_IDS, chooseIds, currentIds, idsOfUplink, parseIdsConf, useIds } from '../../../src/net/ids.js';
import { MARK_BASE, TABLE_BASE, RULE_PREF } from '../../../src/plan/plan.js';
import { MARK_TAG, renderNftRuleset } from '../../../src/net/nft.js';

const F = '/etc/nsroute/nsroute.conf';

describe('nsroute.conf', () => {
  it('defaults when empty, and takes each key', () => {
    expect(parseIdsConf('', F)).toEqual(DEFAULT_IDS);
    expect(parseIdsConf('mark_base = 0x6e730000\ntable_base = 8100\nrule_pref = 4300\n', F)).toEqual({ markBase: 0x6e730000, tableBase: 8100, rulePref: 4300 });
  });
  it.each([
    ['mark_base = 0x6e720001', /low 16 bits/],
    ['mark_base = 0', /nonzero/],
    ['table_base = 250', /at least 255/],
    ['rule_pref = 32764', /between 1 and/],
    ['rule_pref = "4200"', /integer/],
    ['mark = 1', /unknown key mark/],
    ['mark_base = ', /nsroute.conf/],
  ])('refuses %s', (text, msg) => {
    expect(() => parseIdsConf(text, F)).toThrow(msg);
  });
});

describe('which ids a run uses', () => {
  const moved = { markBase: 0x6e730000, tableBase: 8100, rulePref: 4300 };
  it('namespaces keep the ids they were created with until they are gone', () => {
    expect(idsOfUplink({ mark: 0x6e720003, table: 7103, pref: 4200 })).toEqual(DEFAULT_IDS);
    expect(chooseIds(moved, [DEFAULT_IDS])).toEqual({ ids: DEFAULT_IDS, deferred: true });
    expect(chooseIds(moved, [moved])).toEqual({ ids: moved, deferred: false });
    expect(chooseIds(moved, [])).toEqual({ ids: moved, deferred: false });
  });
  it('planner and nft ruleset see the ids in use (live bindings)', () => {
    try {
      useIds(moved);
      expect([MARK_BASE, TABLE_BASE, RULE_PREF, MARK_TAG]).toEqual([0x6e730000, 8100, 4300, 0x6e730000]);
      expect(renderNftRuleset([{ iface: 'nsr-a', subnet: '10.231.0.0/30', mark: 0x6e730001 }])).toContain('ct mark & 0xffff0000 == 0x6e730000');
    } finally {
      useIds(DEFAULT_IDS);
    }
    expect(currentIds()).toEqual(DEFAULT_IDS);
  });
});
