// Whether other tools' policy rules, routing tables and nft mark operations overlap the ids
// nsroute uses (net/ids.ts). Pure: takes `ip -j rule` / `ip -j route show table all` JSON and
// `nft list ruleset` text. Known users of marks and tables are named so the user knows whom
// nsroute is clashing with (Tailscale, wg-quick, Mullvad, Calico, Cilium, Docker...).
import { DEFAULT_IDS, MARK_MASK, MAX_UPLINK_IDS, RULE_PREF_SPAN, type IdBases } from '../net/ids.js';
import { guardRuleOf } from '../plan/guard.js';

export type ClashLevel = 'fail' | 'warn';
export interface Clash {
  level: ClashLevel;
  what: 'mark' | 'table' | 'rule';
  owner?: string; // the tool it looks like
  detail: string;
}

export interface ForeignRule {
  priority: number;
  table?: number;
  fwmark?: number;
  fwmask: number;
  not: boolean;
  action?: string; // unreachable, blackhole, prohibit (no table)
  selective: boolean; // has a from/to/iif/oif/... selector besides the mark
  family: 4 | 6;
  guard?: true; // exactly one of nsroute's fail-closed rules (plan/guard.ts)
}

type Json = Record<string, unknown>;
const TABLE_NAMES: Record<string, number> = { local: 255, main: 254, default: 253 };

export function parseRuleJson(json: unknown, family: 4 | 6, ids: IdBases = DEFAULT_IDS): ForeignRule[] {
  const rows = Array.isArray(json) ? (json as Json[]) : [];
  return rows.map((r) => {
    const guard = r && typeof r === 'object' && guardRuleOf(r, ids.rulePref, ids.markBase & MARK_MASK) !== undefined;
    const t = r.table === undefined ? undefined : (TABLE_NAMES[String(r.table)] ?? Number(r.table));
    return {
      priority: Number(r.priority),
      ...(t !== undefined && !Number.isNaN(t) ? { table: t } : {}),
      ...(typeof r.fwmark === 'string' ? { fwmark: Number(r.fwmark) } : {}),
      fwmask: typeof r.fwmask === 'string' ? Number(r.fwmask) : 0xffffffff,
      not: 'not' in r,
      ...(typeof r.action === 'string' ? { action: r.action } : {}),
      selective: (r.src !== undefined && r.src !== 'all') || ['dst', 'iif', 'oif', 'ipproto', 'sport', 'dport', 'uidrange', 'tos', 'l3mdev'].some((k) => k in r),
      family,
      ...(guard ? { guard: true as const } : {}),
    };
  });
}

// Routing tables that hold routes (`ip -j route show table all`; main-table routes omit "table").
export function tablesWithRoutes(json: unknown): Set<number> {
  const rows = Array.isArray(json) ? (json as Json[]) : [];
  return new Set(rows.map((r) => (r.table === undefined ? 254 : (TABLE_NAMES[String(r.table)] ?? Number(r.table)))).filter((t) => !Number.isNaN(t)));
}

export interface NftMarkOp {
  table: string; // "inet mullvad"
  chain: string;
  kind: 'match' | 'set';
  ct: boolean; // ct mark (else meta mark)
  value: number;
  mask: number; // bits compared (match) or changed (set)
  copy?: boolean; // `meta mark set ct mark` and the like: value unknown
  line: string;
}

// The mark matches and assignments in `nft list ruleset` text, per table and chain.
export function nftMarkOps(text: string): NftMarkOp[] {
  const ops: NftMarkOp[] = [];
  let table = '';
  let chain = '';
  const num = (s: string) => Number(s);
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let m = /^table (\S+) (\S+) \{/.exec(line);
    if (m) {
      table = `${m[1]} ${m[2]}`;
      chain = '';
      continue;
    }
    m = /^chain (\S+) \{/.exec(line);
    if (m) {
      chain = m[1] ?? '';
      continue;
    }
    // Assignments: mark set VALUE | mark set [meta|ct] mark & KEEP | VALUE | mark set ct mark
    for (const s of line.matchAll(/\b(ct |meta )?mark set ((?:meta |ct )?mark)?(?: & (0x[0-9a-f]+))?(?: \| (0x[0-9a-f]+))?(?: ?(0x[0-9a-f]+))?/g)) {
      const ct = s[1] === 'ct ';
      const from = s[2];
      const keep = s[3] !== undefined ? num(s[3]) : undefined;
      const or = s[4] !== undefined ? num(s[4]) : undefined;
      const plain = s[5] !== undefined ? num(s[5]) : undefined;
      if (from && keep === undefined && or === undefined) {
        ops.push({ table, chain, kind: 'set', ct, value: 0, mask: 0xffffffff, copy: true, line });
      } else if (keep !== undefined) {
        const value = or ?? 0;
        ops.push({ table, chain, kind: 'set', ct, value, mask: ((~keep >>> 0) | value) >>> 0, line });
      } else if (plain !== undefined) {
        ops.push({ table, chain, kind: 'set', ct, value: plain, mask: 0xffffffff, line });
      }
    }
    // Matches: [meta|ct] mark [& MASK ==] VALUE (not followed by "set")
    for (const s of line.matchAll(/\b(ct |meta )?mark (?:& (0x[0-9a-f]+) == |!= |== )?(0x[0-9a-f]+)/g)) {
      ops.push({ table, chain, kind: 'match', ct: s[1] === 'ct ', value: num(s[3] ?? '0'), mask: s[2] ? num(s[2]) : 0xffffffff, line });
    }
  }
  return ops;
}

// Names of the tools whose well-known ids these are.
export function ownerOf(x: { table?: string; chain?: string; mark?: number; mask?: number; routeTable?: number }): string | undefined {
  const t = `${x.table ?? ''} ${x.chain ?? ''}`.toLowerCase();
  if (/\bts-|tailscale/.test(t) || x.routeTable === 52 || x.mask === 0xff0000) return 'Tailscale';
  if (/wg-quick/.test(t) || x.mark === 0xca6c || x.routeTable === 51820) return 'wg-quick';
  if (/mullvad/.test(t) || x.mark === 0x6d6f6c65 || x.mark === 0xf41 || x.routeTable === 0x6d6f6c65) return 'Mullvad';
  if (/cali-|calico/.test(t)) return 'Calico';
  if (/cilium/.test(t) || x.routeTable === 2004 || x.routeTable === 2005) return 'Cilium';
  if (/docker/.test(t)) return 'Docker';
  if (/firewalld/.test(t)) return 'firewalld';
  if (/ufw/.test(t)) return 'ufw';
  return undefined;
}

const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

// Does VALUE/MASK match any of nsroute's marks base+1..base+MAX?
export function matchesOurMarks(value: number, mask: number, ids: IdBases): boolean {
  const want = (value & mask) >>> 0;
  for (let i = 1; i <= MAX_UPLINK_IDS; i++) if ((((ids.markBase + i) & mask) >>> 0) === want) return true;
  return false;
}

function isOurTable(t: number | undefined, ids: IdBases): boolean {
  return t !== undefined && t > ids.tableBase && t <= ids.tableBase + MAX_UPLINK_IDS;
}
function inOurPrefs(p: number, ids: IdBases): boolean {
  return p >= ids.rulePref && p < ids.rulePref + RULE_PREF_SPAN;
}

// nsroute's own rules: in its priority span, and either its mark and table, or a fail-closed
// action without a table.
export function isOurRule(r: ForeignRule, ids: IdBases): boolean {
  if (!inOurPrefs(r.priority, ids)) return false;
  if (r.guard) return true;
  if (r.fwmark !== undefined && !r.not && matchesOurMarks(r.fwmark, r.fwmask, ids) && (r.table === undefined || isOurTable(r.table, ids))) return true;
  if (r.fwmark === undefined && isOurTable(r.table, ids)) return true;
  return r.table === undefined && r.action !== undefined;
}

const OUR_NFT_TABLE = 'inet nsroute';

export function findClashes(rules: readonly ForeignRule[], routeTables: ReadonlySet<number>, nftText: string, ids: IdBases): Clash[] {
  const out: Clash[] = [];
  const ourTables = new Set(rules.filter((r) => isOurRule(r, ids) && r.table !== undefined).map((r) => r.table!));
  for (const r of rules) {
    if (isOurRule(r, ids) || r.priority === 0 || r.priority >= 32766) continue;
    const who = ownerOf({ mark: r.fwmark, mask: r.fwmask, routeTable: r.table });
    const desc = `ip${r.family === 6 ? ' -6' : ''} rule pref ${r.priority}${r.not ? ' not' : ''}${r.fwmark !== undefined ? ` fwmark ${hex(r.fwmark)}${r.fwmask !== 0xffffffff ? `/${hex(r.fwmask)}` : ''}` : ''}${r.table !== undefined ? ` lookup ${r.table}` : r.action ? ` ${r.action}` : ''}`;
    const base = { ...(who ? { owner: who } : {}) };
    if (r.fwmark !== undefined && !r.not && matchesOurMarks(r.fwmark, r.fwmask, ids)) {
      const before = r.priority < ids.rulePref;
      out.push({ ...base, level: before ? 'fail' : 'warn', what: 'mark', detail: `${desc} matches nsroute's marks ${hex(ids.markBase + 1)}-${before ? ': it routes nsroute\'s packets before nsroute\'s own rule does' : ''}` });
    } else if (r.priority < ids.rulePref && r.table !== undefined && !r.selective && (r.fwmark === undefined || (r.not && !matchesOurMarks(r.fwmark, r.fwmask, ids)))) {
      out.push({ ...base, level: 'warn', what: 'rule', detail: `${desc} comes before nsroute's rules (${ids.rulePref}) and can match nsroute's packets: a route in table ${r.table} would win` });
    } else if (inOurPrefs(r.priority, ids)) {
      out.push({ ...base, level: 'warn', what: 'rule', detail: `${desc} shares nsroute's rule priorities ${ids.rulePref}-${ids.rulePref + RULE_PREF_SPAN - 1}` });
    }
    if (isOurTable(r.table, ids) && !ourTables.has(r.table!)) {
      out.push({ ...base, level: 'warn', what: 'table', detail: `${desc} uses routing table ${r.table}, in nsroute's range ${ids.tableBase + 1}-${ids.tableBase + MAX_UPLINK_IDS} (nsroute skips tables in use, but one it picks first may be taken later)` });
    }
  }
  for (const t of routeTables) {
    if (isOurTable(t, ids) && !ourTables.has(t) && !rules.some((r) => r.table === t)) {
      out.push({ level: 'warn', what: 'table', detail: `routing table ${t} holds routes and is in nsroute's range ${ids.tableBase + 1}-${ids.tableBase + MAX_UPLINK_IDS}` });
    }
  }
  const tag = (ids.markBase & MARK_MASK) >>> 0;
  const seen = new Set<string>();
  for (const op of nftMarkOps(nftText)) {
    if (op.table === OUR_NFT_TABLE) continue;
    const who = ownerOf({ table: op.table, chain: op.chain, mark: op.value, mask: op.mask });
    const where = `nft table ${op.table} chain ${op.chain}: "${op.line}"`;
    let clash: Clash | undefined;
    if (op.kind === 'match' && matchesOurMarks(op.value, op.mask, ids)) {
      clash = { level: 'warn', what: 'mark', detail: `${where} matches nsroute's marks` };
    } else if (op.kind === 'set' && !op.copy && (op.value & MARK_MASK) >>> 0 === tag && op.value !== 0) {
      clash = { level: 'fail', what: 'mark', detail: `${where} gives packets nsroute's mark tag ${hex(tag)}: nsroute would take them for its own` };
    } else if (op.kind === 'set' && !op.copy && ((op.mask & MARK_MASK) >>> 0) !== 0) {
      clash = { level: 'warn', what: 'mark', detail: `${where} rewrites ${op.ct ? 'ct ' : ''}mark bits ${hex((op.mask & MARK_MASK) >>> 0)} that nsroute's marks use, on the packets it matches` };
    }
    if (clash && !seen.has(clash.detail)) {
      seen.add(clash.detail);
      out.push({ ...clash, ...(who ? { owner: who } : {}) });
    }
  }
  return out;
}

// Bases that none of the seen ids overlap, for the hint: the next free mark tag after ours
// and the next free block of tables.
export function suggestIds(rules: readonly ForeignRule[], routeTables: ReadonlySet<number>, nftText: string, ids: IdBases): IdBases {
  const ops = nftMarkOps(nftText).filter((o) => o.table !== OUR_NFT_TABLE);
  const foreign = rules.filter((r) => !isOurRule(r, ids));
  let markBase = ids.markBase;
  for (let tag = (ids.markBase >>> 16) + 1; tag <= 0xffff; tag++) {
    const cand: IdBases = { ...ids, markBase: (tag << 16) >>> 0 };
    const bad =
      foreign.some((r) => r.fwmark !== undefined && matchesOurMarks(r.fwmark, r.fwmask, cand)) ||
      ops.some((o) => (o.kind === 'match' && matchesOurMarks(o.value, o.mask, cand)) || (o.kind === 'set' && !o.copy && (o.value & MARK_MASK) >>> 0 === cand.markBase));
    if (!bad) {
      markBase = cand.markBase;
      break;
    }
  }
  const used = new Set<number>([...routeTables, ...foreign.flatMap((r) => (r.table === undefined ? [] : [r.table]))]);
  let tableBase = ids.tableBase;
  for (let b = ids.tableBase + 1000; b < 0x7fffffff - MAX_UPLINK_IDS; b += 1000) {
    if (![...used].some((t) => t > b && t <= b + MAX_UPLINK_IDS)) {
      tableBase = b;
      break;
    }
  }
  let rulePref = ids.rulePref;
  const prefs = new Set(foreign.map((r) => r.priority));
  for (let p = ids.rulePref + 10; p < 32000; p += 10) {
    if (![...Array(RULE_PREF_SPAN).keys()].some((k) => prefs.has(p + k))) {
      rulePref = p;
      break;
    }
  }
  return { markBase, tableBase, rulePref };
}
