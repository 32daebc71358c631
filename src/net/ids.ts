// The ids nsroute gives host objects: packet marks, routing tables, policy rule priorities.
// Defaults suit most hosts; /etc/nsroute/nsroute.conf moves them when another tool already
// uses them (`nsroute doctor` finds such clashes). The config is read once per run, before
// any command plans (sys/ids.ts calls useIds); these live bindings are what plan.ts, nft.ts
// and gc.ts see. Pure: parsing and choosing, no file access.
import { parse as parseToml } from 'smol-toml';
import { UserError } from '../errors.js';

// Keys of nsroute.conf that are not ids: the limits for users who enter through sudo
// (policy/quota.ts reads them).
export const QUOTA_KEYS = ['user_namespaces', 'user_commands'] as const;

export interface IdBases {
  markBase: number; // marks are markBase + 1..MAX_UPLINKS; the top 16 bits tag them as ours
  tableBase: number; // routing tables tableBase + 1..MAX_UPLINKS
  rulePref: number; // priority of the uplink rules (fail-closed rules use the next few)
}

export const DEFAULT_IDS: IdBases = { markBase: 0x6e720000, tableBase: 7100, rulePref: 4200 }; // "nr"
export const MAX_UPLINK_IDS = 899;
// Priorities from rulePref on that nsroute may use (uplink rules + fail-closed rules).
export const RULE_PREF_SPAN = 4;
export const MARK_MASK = 0xffff0000;

export let TABLE_BASE = DEFAULT_IDS.tableBase;
export let MARK_BASE = DEFAULT_IDS.markBase;
export let RULE_PREF = DEFAULT_IDS.rulePref;
export let MARK_TAG = DEFAULT_IDS.markBase & MARK_MASK;

export function useIds(ids: IdBases): void {
  TABLE_BASE = ids.tableBase;
  MARK_BASE = ids.markBase;
  RULE_PREF = ids.rulePref;
  MARK_TAG = ids.markBase & MARK_MASK;
}

export function currentIds(): IdBases {
  return { markBase: MARK_BASE, tableBase: TABLE_BASE, rulePref: RULE_PREF };
}

const KEYS = { mark_base: 'markBase', table_base: 'tableBase', rule_pref: 'rulePref' } as const;

// nsroute.conf: TOML with mark_base, table_base, rule_pref, each optional.
export function parseIdsConf(text: string, file: string): IdBases {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: ${(e as Error).message.split('\n')[0]}`, 'it is TOML: mark_base = 0x6e720000, table_base = 7100, rule_pref = 4200');
  }
  const ids: IdBases = { ...DEFAULT_IDS };
  for (const [key, value] of Object.entries(doc)) {
    if ((QUOTA_KEYS as readonly string[]).includes(key)) continue; 
    const field = KEYS[key as keyof typeof KEYS];
    if (!field) throw new UserError(`${file}: unknown key ${key}`, `the keys are ${Object.keys(KEYS).join(', ')}`);
    if (typeof value !== 'number' || !Number.isInteger(value)) throw new UserError(`${file}: ${key} must be an integer`, 'e.g. mark_base = 0x6e720000');
    ids[field] = value;
  }
  const { markBase, tableBase, rulePref } = ids;
  if (markBase <= 0 || markBase > 0xffff0000 || (markBase & 0xffff) !== 0) {
    throw new UserError(`${file}: mark_base ${hex(markBase)} must be a nonzero value with its low 16 bits zero`, 'e.g. mark_base = 0x6e730000 (the low 16 bits number the uplinks)');
  }
  // 0 and 253-255 are the kernel's unspec/default/main/local tables.
  if (tableBase < 255 || tableBase + MAX_UPLINK_IDS > 0x7fffffff) {
    throw new UserError(`${file}: table_base ${tableBase} must be at least 255 and leave room for ${MAX_UPLINK_IDS} tables`, 'e.g. table_base = 7100');
  }
  if (rulePref < 1 || rulePref + RULE_PREF_SPAN > 32765) {
    throw new UserError(`${file}: rule_pref ${rulePref} must be between 1 and ${32765 - RULE_PREF_SPAN}`, "it must come before the main table's rule (32766)");
  }
  return ids;
}

export function sameIds(a: IdBases, b: IdBases): boolean {
  return a.markBase === b.markBase && a.tableBase === b.tableBase && a.rulePref === b.rulePref;
}

// The ids an existing uplink was created with (its mark and table are base + the same index).
export function idsOfUplink(u: { mark: number; table: number; pref: number }): IdBases {
  return { markBase: u.mark & MARK_MASK, tableBase: u.table - (u.mark & 0xffff), rulePref: u.pref };
}

// Which ids this run uses: a namespace keeps the ids it was created with, so while any
// namespace with other ids exists, those stay in force (the nft reply rule matches one mark
// tag, and gc recognises leftovers by range); the configured ones take effect after.
export function chooseIds(configured: IdBases, recorded: readonly IdBases[]): { ids: IdBases; deferred: boolean } {
  const other = recorded.find((r) => !sameIds(r, configured));
  return other ? { ids: other, deferred: true } : { ids: configured, deferred: false };
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
