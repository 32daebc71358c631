// Holes for the namespaces' traffic in other tools' native nftables forward chains
// (firewalld's filter_FORWARD ends in a reject; a hand-written /etc/nftables.conf may have
// `policy drop`). A packet dropped by any forward base chain is dropped, so the accept must
// be in that chain itself. Pure: reads `nft -j list ruleset`, renders the nft commands.
// Tables iptables-nft manages are left to the iptables backend (sys/iptables.ts): native
// rules in them would break `iptables -S` for Docker and friends.
export const HOLE_COMMENT = 'nsroute';
const XTABLES_NAMES = new Set(['filter', 'nat', 'mangle', 'raw', 'security']);

type Json = Record<string, unknown>;

export interface ForwardChain {
  family: string;
  table: string;
  name: string;
  restrictive: boolean; // policy drop, or a drop/reject rule in it
  ourRules: number[]; // handles of rules carrying our comment
}

function items(json: unknown): Json[] {
  const list = (json as { nftables?: unknown[] } | undefined)?.nftables;
  return Array.isArray(list) ? (list.filter((x) => x && typeof x === 'object') as Json[]) : [];
}

function verdictOf(rule: Json): string | undefined {
  const expr = Array.isArray(rule.expr) ? (rule.expr as Json[]) : [];
  for (const e of expr) {
    if ('drop' in e) return 'drop';
    if ('reject' in e) return 'reject';
  }
  return undefined;
}

// A base chain at the forward hook of another tool's native nft table: the chains holes may
// be needed in (iptables-nft's own, upper-case ones are handled through iptables).
function isOtherForwardChain(c: Json | undefined): c is Json {
  if (!c || c.hook !== 'forward' || !['ip', 'ip6', 'inet'].includes(String(c.family))) return false;
  const family = String(c.family);
  const table = String(c.table);
  const name = String(c.name);
  if (family === 'inet' && table === 'nsroute') return false;
  return !((family === 'ip' || family === 'ip6') && XTABLES_NAMES.has(table) && name === name.toUpperCase());
}

// Whether `nft -j list chains` (tables and chains, no rules, no set elements: cheap however
// many namespaces fill nsroute's sets) says everything forwardChains, xtablesForwardChains and
// hasNsrouteTable need: true unless another tool has a native forward chain, whose rules
// only the whole ruleset shows.
export function chainsSuffice(chainsJson: unknown): boolean {
  return !items(chainsJson).some((it) => isOtherForwardChain(it.chain as Json | undefined));
}

export function forwardChains(rulesetJson: unknown): ForwardChain[] {
  const all = items(rulesetJson);
  const chains: ForwardChain[] = [];
  for (const it of all) {
    const c = it.chain as Json | undefined;
    if (!isOtherForwardChain(c)) continue;
    const family = String(c.family);
    const table = String(c.table);
    const name = String(c.name);
    const rules = all
      .map((x) => x.rule as Json | undefined)
      .filter((r): r is Json => !!r && r.family === family && r.table === table && r.chain === name);
    chains.push({
      family,
      table,
      name,
      restrictive: c.policy === 'drop' || rules.some((r) => verdictOf(r) !== undefined && r.comment !== HOLE_COMMENT),
      ourRules: rules.filter((r) => r.comment === HOLE_COMMENT).map((r) => Number(r.handle)),
    });
  }
  return chains;
}

// One `nft -f` transaction that opens every restrictive chain that is not open yet.
export function renderHoleInserts(chains: readonly ForwardChain[]): string {
  const lines: string[] = [];
  for (const c of chains) {
    if (!c.restrictive || c.ourRules.length > 0) continue;
    const at = `${c.family} ${c.table} ${c.name}`;
    // insert puts a rule first: the reply rule ends up below the accept from nsr*; both precede everything else.
    lines.push(`insert rule ${at} oifname "nsr*" ct state established,related accept comment "${HOLE_COMMENT}"`);
    lines.push(`insert rule ${at} iifname "nsr*" accept comment "${HOLE_COMMENT}"`);
  }
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

export function renderHoleDeletes(chains: readonly ForwardChain[]): string {
  const lines = chains.flatMap((c) => c.ourRules.map((h) => `delete rule ${c.family} ${c.table} ${c.name} handle ${h}`));
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

// iptables-nft's FORWARD chains (seen in the same `nft -j list ruleset`) that would drop the
// namespaces' traffic and have no jump to NSROUTE-FORWARD yet.
export function xtablesHolesMissing(rulesetJson: unknown, chain = 'NSROUTE-FORWARD'): string[] {
  const all = items(rulesetJson);
  const out: string[] = [];
  for (const it of all) {
    const c = it.chain as Json | undefined;
    if (!c || c.name !== 'FORWARD' || c.table !== 'filter' || (c.family !== 'ip' && c.family !== 'ip6')) continue;
    const rules = all.map((x) => x.rule as Json | undefined).filter((r): r is Json => !!r && r.family === c.family && r.table === 'filter' && r.chain === 'FORWARD');
    const jumps = rules.some((r) => JSON.stringify(r.expr ?? []).includes(`"target":"${chain}"`));
    if (!jumps && (c.policy === 'drop' || rules.length > 0)) out.push(`${c.family} filter FORWARD`);
  }
  return out;
}

// The FORWARD chains of iptables-nft's filter tables ("ip"/"ip6"): which iptables-nft
// backends have a filter table here, read from the ruleset rather than one `nft list chain`
// each.
export function xtablesForwardChains(rulesetJson: unknown): { family: string }[] {
  return items(rulesetJson).flatMap((it) => {
    const c = it.chain as Json | undefined;
    return c && c.name === 'FORWARD' && c.table === 'filter' && (c.family === 'ip' || c.family === 'ip6') ? [{ family: String(c.family) }] : [];
  });
}

// Whether nsroute's own table is there (a flushed ruleset has lost it); from the whole ruleset
// or from `nft -j list chains` (its chains: the table without them is as good as lost).
export function hasNsrouteTable(rulesetJson: unknown): boolean {
  return items(rulesetJson).some((it) => {
    const t = it.table as Json | undefined;
    const c = it.chain as Json | undefined;
    return (!!t && t.family === 'inet' && t.name === 'nsroute') || (!!c && c.family === 'inet' && c.table === 'nsroute');
  });
}
