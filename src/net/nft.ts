// The nftables table nsroute owns. It is always rendered whole from the namespaces in the
// run dir and loaded with one `nft -f -`: atomic, idempotent ("table {}" + "delete table" +
// body replaces whatever is there), and a flushed firewall is restored by the next render.
// Per-packet cost does not grow with the number of namespaces: one set/map lookup per rule.
// The uplink mark is also kept in the connection's ct mark and put back on its replies, so
// that hosts with strict reverse-path filtering (rp_filter=1, plus src_valid_mark on the
// uplink) check a reply against the uplink's table, where it did arrive, not the main one.

export const NFT_FAMILY = 'inet';
export const NFT_TABLE = 'nsroute';

export interface NftMember {
  iface: string; // host end of the namespace's veth
  subnet: string; // the veth link's IPv4 block
  subnet6?: string; // its IPv6 block, with --ipv6 nat
  mark?: number; // uplink mark when --via is used; HOST_MARK without
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

export function renderNftRuleset(members: readonly NftMember[]): string {
  const head = `table ${NFT_FAMILY} ${NFT_TABLE} {}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`;
  if (members.length === 0) return head;
  const sorted = [...members].sort((a, b) => a.iface.localeCompare(b.iface));
  const ifaces = sorted.map((m) => JSON.stringify(m.iface));
  const nets = sorted.map((m) => m.subnet);
  const marks = sorted.map((m) => `${JSON.stringify(m.iface)} : ${hex(m.mark ?? HOST_MARK)}`);
  const nets6 = sorted.flatMap((m) => (m.subnet6 ? [m.subnet6] : []));
  return (
    head +
    `table ${NFT_FAMILY} ${NFT_TABLE} {
\tcomment "managed by nsroute: rebuilt from its run dir on every change; do not edit"
\tset ns_ifaces { type ifname;${elements(ifaces)} }
\tset ns_nets4 { type ipv4_addr; flags interval;${elements(nets)} }
\tset ns_nets6 { type ipv6_addr; flags interval;${elements(nets6)} }
\tmap uplink_mark { type ifname : mark;${elements(marks)} }
\tchain prerouting {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tmeta mark set iifname map @uplink_mark ct mark set meta mark
\t\tct direction reply ct mark & ${hex(MARK_MASK)} == ${hex(MARK_TAG)} meta mark set ct mark
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr @ns_nets4 oifname != @ns_ifaces masquerade
\t\tip6 saddr @ns_nets6 oifname != @ns_ifaces masquerade
\t}
}
`
  );
}
