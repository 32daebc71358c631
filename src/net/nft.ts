// The nftables table nsroute owns. Each namespace is a few elements of its sets and map
// (renderNftAdd/renderNftDelete: one `nft -f -` transaction per namespace, whatever the
// number of others); the table itself is rendered whole from the namespaces in the run dir
// only when it is missing (first namespace, a flushed firewall), by gc and repairs, and
// whenever the per-namespace transaction fails: atomic and idempotent ("table {}" + "delete
// table" + body replaces whatever is there). The table goes with the last namespace.
// Per-packet cost does not grow with the number of namespaces: one set/map lookup per rule.
// The uplink mark is also kept in the connection's ct mark and put back on its replies, so
// that hosts with strict reverse-path filtering (rp_filter=1, plus src_valid_mark on the
// uplink) check a reply against the uplink's table, where it did arrive, not the main one.

import { compareNames } from './names.js';
import { renderPublishObjects, type PublishMember } from './publish.js';

export const NFT_FAMILY = 'inet';
export const NFT_TABLE = 'nsroute';

export interface NftMember {
  iface: string; // host end of the namespace's veth
  subnet: string; // the veth link's IPv4 block
  subnet6?: string; // its IPv6 block, with --ipv6 nat
  mark?: number; // uplink mark when --via is used; HOST_MARK without
  publish?: PublishMember; // its published ports (net/publish.ts), when it has any
}

// Marks nsroute gives packets (MARK_BASE + uplink index, plan.ts): the top 16 bits say "ours".
// Configurable with the mark base (net/ids.ts); live bindings.
export { MARK_MASK, MARK_TAG } from './ids.js';
import { MARK_MASK, MARK_TAG } from './ids.js';
// The mark of namespaces without --via (uplink index 0, so the base itself): they follow the
// host's routing, and the mark is what lets them past the fail-closed rule (plan/guard.ts);
// unmarked traffic from nsroute's blocks has no route at all. A live binding too.
export { MARK_TAG as HOST_MARK } from './ids.js';
import { MARK_TAG as HOST_MARK } from './ids.js';

export function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function elements(items: readonly string[]): string {
  return items.length > 0 ? ` elements = { ${items.join(', ')} };` : '';
}

// --mode replies (plan/replies.ts, seed 003): connections that arrive on `dev` addressed to the
// host itself get `mark` as their ct mark; the mark is put on their packets both ways (in: for
// strict rp_filter with src_valid_mark; out, in a route chain: the kernel routes the reply again,
// by the uplink's fwmark rule, to its table). Objects of their own in nsroute's table (replies_*),
// rendered only while a replies policy exists.
export interface NftReplies {
  dev: string;
  mark: number;
}

function renderReplies(replies: readonly NftReplies[]): string {
  if (replies.length === 0) return '';
  const sorted = [...replies].sort((a, b) => compareNames(a.dev, b.dev));
  const marks = sorted.map((r) => `${JSON.stringify(r.dev)} : ${hex(r.mark)}`);
  const set = [...new Set(sorted.map((r) => hex(r.mark)))];
  return `\tmap replies_mark { type ifname : mark;${elements(marks)} }
\tset replies_marks { type mark;${elements(set)} }
\tchain replies_in {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tmeta nfproto ipv4 ct state new fib daddr type local ct mark set iifname map @replies_mark
\t\tct direction original ct mark @replies_marks meta mark set ct mark
\t}
\tchain replies_out {
\t\ttype route hook output priority mangle; policy accept;
\t\tct direction reply ct mark @replies_marks meta mark set ct mark
\t}
`;
}

export function renderNftRuleset(members: readonly NftMember[], replies: readonly NftReplies[] = []): string {
  const head = `table ${NFT_FAMILY} ${NFT_TABLE} {}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`;
  if (members.length === 0 && replies.length === 0) return head;
  const sorted = [...members].sort((a, b) => compareNames(a.iface, b.iface));
  const ifaces = sorted.map((m) => JSON.stringify(m.iface));
  const nets = sorted.map((m) => m.subnet);
  const marks = sorted.map((m) => `${JSON.stringify(m.iface)} : ${hex(m.mark ?? HOST_MARK)}`);
  const nets6 = sorted.flatMap((m) => (m.subnet6 ? [m.subnet6] : []));
  return (
    head +
    `table ${NFT_FAMILY} ${NFT_TABLE} {
\tcomment "managed by nsroute: one element per namespace, rebuilt from its run dir when lost; do not edit"
\tset ns_ifaces { type ifname;${elements(ifaces)} }
\tset ns_nets4 { type ipv4_addr; flags interval;${elements(nets)} }
\tset ns_nets6 { type ipv6_addr; flags interval;${elements(nets6)} }
\tmap uplink_mark { type ifname : mark;${elements(marks)} }
\tchain prerouting {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tct direction original meta mark set iifname map @uplink_mark ct mark set meta mark
\t\tct direction reply ct mark & ${hex(MARK_MASK)} == ${hex(MARK_TAG)} meta mark set ct mark
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr @ns_nets4 oifname != @ns_ifaces masquerade
\t\tip6 saddr @ns_nets6 oifname != @ns_ifaces masquerade
\t}
${renderReplies(replies)}${renderPublishObjects(sorted.flatMap((m) => (m.publish ? [m.publish] : [])))}}
`
  );
}

// One namespace's elements, added to the table in one transaction (`nft -f -`). Fails as a
// whole (nothing changed) when the table is missing or an element clashes: the caller then
// renders the table whole. Adding an element that is there already changes nothing.
export function renderNftAdd(m: NftMember): string {
  const t = `${NFT_FAMILY} ${NFT_TABLE}`;
  const iface = JSON.stringify(m.iface);
  return [
    `add element ${t} ns_ifaces { ${iface} }`,
    `add element ${t} ns_nets4 { ${m.subnet} }`,
    ...(m.subnet6 ? [`add element ${t} ns_nets6 { ${m.subnet6} }`] : []),
    `add element ${t} uplink_mark { ${iface} : ${hex(m.mark ?? HOST_MARK)} }`,
  ].join('\n') + '\n';
}

// Exactly that namespace's elements, in one transaction: it fails as a whole when one of them
// is missing (the caller then renders the table whole from the namespaces that remain).
export function renderNftDelete(m: NftMember): string {
  const t = `${NFT_FAMILY} ${NFT_TABLE}`;
  const iface = JSON.stringify(m.iface);
  return [
    `delete element ${t} uplink_mark { ${iface} }`,
    ...(m.subnet6 ? [`delete element ${t} ns_nets6 { ${m.subnet6} }`] : []),
    `delete element ${t} ns_nets4 { ${m.subnet} }`,
    `delete element ${t} ns_ifaces { ${iface} }`,
  ].join('\n') + '\n';
}

// Whether `nft -j list ruleset` shows this namespace's interface in nsroute's table (what a
// repair looks at: a table that is there but lost an element gets it back).
export function nftHasMember(rulesetJson: unknown, iface: string): boolean {
  const list = (rulesetJson as { nftables?: unknown[] } | undefined)?.nftables;
  if (!Array.isArray(list)) return false;
  return list.some((it) => {
    const set = (it as { set?: { family?: string; table?: string; name?: string; elem?: unknown[] } } | null)?.set;
    return !!set && set.family === NFT_FAMILY && set.table === NFT_TABLE && set.name === 'ns_ifaces' && Array.isArray(set.elem) && set.elem.includes(iface);
  });
}

// Whether nsroute's table has the replies policy of `dev` (what a repair looks at).
export function nftHasReplies(rulesetJson: unknown, dev: string, mark: number): boolean {
  const list = (rulesetJson as { nftables?: unknown[] } | undefined)?.nftables;
  if (!Array.isArray(list)) return false;
  const has = (kind: 'chain' | 'map', name: string) =>
    list.some((it) => {
      const o = (it as Record<string, { family?: string; table?: string; name?: string; elem?: unknown[] }> | null)?.[kind];
      return !!o && o.family === NFT_FAMILY && o.table === NFT_TABLE && o.name === name && (kind === 'chain' || (Array.isArray(o.elem) && o.elem.some((e) => Array.isArray(e) && e[0] === dev && Number(e[1]) === mark)));
    });
  return has('map', 'replies_mark') && has('chain', 'replies_in') && has('chain', 'replies_out');
}
