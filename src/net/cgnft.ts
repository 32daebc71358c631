// The nftables table of cgroup mode (plan/cgroup.ts): routes the sockets of processes in a
// NAME's cgroup without a network namespace (seeds 000-002, on cgroup v2 instead of net_cls).
// A table of its own, `inet nsroute_cgroup`, beside nat mode's `inet nsroute`: that one is
// rendered whole from the namespaces' configs whenever it is lost, and would drop these
// elements; each table is owned by one planner and rendered whole from its own NAMEs only.
// Per-packet cost does not grow with the number of NAMEs: each rule is one map lookup keyed by
// the socket's cgroup (nft resolves the element's path to the cgroup's id when it is loaded:
// a cgroup removed and made again needs its element added again).
//
//   route output:    mark the connection of a member's socket with its uplink's mark (the
//                    rerouting chain: the packet then takes the uplink's table); packets
//                    without a full socket get the ct mark back
//   raw prerouting:  nothing from outside addressed to 127.0.0.0/8 (the uplink has
//                    route_localnet=1 for the stub case below; before conntrack, so the
//                    replies to masqueraded stub queries, addressed to the uplink, pass)
//   prerouting:      replies get the uplink mark back from the connection, so strict
//                    rp_filter (with src_valid_mark on the uplink) checks them there
//   nat output:      members' DNS (port 53, any server, also a loopback stub) goes to NAME's
//                    server (DNAT); IPv6 DNS is refused (the servers are IPv4); a query to a
//                    stub on 127.0.0.53 keeps its loopback source until masqueraded: the
//                    kernel routes it out only with route_localnet on the uplink (journaled)
//   filter output:   --ipv6 off: members' IPv6 is rejected at once (no waiting for a timeout)
//   nat postrouting: members' marked traffic leaves with the uplink's address (masquerade:
//                    the source was chosen from the main table before the mark rerouted it).
//                    By the uplink mark, as nft has no socket match in postrouting; the
//                    host's own traffic never carries one (nat mode's forwarded traffic with
//                    it is masqueraded by its own table anyway)

import { compareNames } from './names.js';
import { hex } from './nft.js';
import { MARK_MASK, MARK_TAG } from './ids.js';

export const CG_FAMILY = 'inet';
export const CG_TABLE = 'nsroute_cgroup';

export interface CgMember {
  path: string; // relative to the cgroup v2 mount
  mark?: number; // the uplink's mark; absent: host routing
  dns?: string; // the first of NAME's name servers
  ipv6: 'off' | 'nat';
}

function elements(items: readonly string[]): string {
  return items.length > 0 ? ` elements = { ${items.join(', ')} };` : '';
}

const q = (path: string) => JSON.stringify(path);

// The whole table (replacing whatever is there: "table {}" + "delete table" + body in one
// transaction). `level`: the depth of every NAME's cgroup (all sit in one parent).
export function renderCgRuleset(level: number, members: readonly CgMember[]): string {
  const head = `table ${CG_FAMILY} ${CG_TABLE} {}\ndelete table ${CG_FAMILY} ${CG_TABLE}\n`;
  if (members.length === 0) return head;
  const sorted = [...members].sort((a, b) => compareNames(a.path, b.path));
  const all = sorted.map((m) => q(m.path));
  const marks = sorted.flatMap((m) => (m.mark !== undefined ? [`${q(m.path)} : ${hex(m.mark)}`] : []));
  const dns = sorted.flatMap((m) => (m.dns ? [`${q(m.path)} : ${m.dns}`] : []));
  const v6off = sorted.flatMap((m) => (m.ipv6 === 'off' ? [q(m.path)] : []));
  const sock = `socket cgroupv2 level ${level}`;
  return (
    head +
    `table ${CG_FAMILY} ${CG_TABLE} {
\tcomment "managed by nsroute (cgroup mode): one element per NAME, rebuilt from its run dir when lost; do not edit"
\tset cg_members { type cgroupsv2;${elements(all)} }
\tset cg_v6off { type cgroupsv2;${elements(v6off)} }
\tmap cg_mark { type cgroupsv2 : mark;${elements(marks)} }
\tmap cg_dns { type cgroupsv2 : ipv4_addr;${elements(dns)} }
\tchain output {
\t\ttype route hook output priority mangle; policy accept;
\t\tct mark & ${hex(MARK_MASK)} == ${hex(MARK_TAG)} meta mark set ct mark
\t\tmeta mark set ${sock} map @cg_mark ct mark set meta mark
\t}
\tchain raw_prerouting {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tiif != "lo" ip daddr 127.0.0.0/8 drop
\t}
\tchain prerouting {
\t\ttype filter hook prerouting priority mangle; policy accept;
\t\tct direction reply ct mark & ${hex(MARK_MASK)} == ${hex(MARK_TAG)} meta mark set ct mark
\t}
\tchain nat_output {
\t\ttype nat hook output priority -100; policy accept;
\t\tmeta l4proto { tcp, udp } th dport 53 dnat ip to ${sock} map @cg_dns
\t}
\tchain filter_output {
\t\ttype filter hook output priority 0; policy accept;
\t\tmeta nfproto ipv6 ${sock} @cg_v6off reject with icmpv6 admin-prohibited
\t\tmeta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 ${sock} @cg_members reject with icmpv6 admin-prohibited
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname != "lo" meta mark & ${hex(MARK_MASK)} == ${hex(MARK_TAG)} meta mark != ${hex(MARK_TAG)} masquerade
\t}
}
`
  );
}

// One NAME's elements, in one transaction; fails as a whole when the table is missing (the
// caller then renders it whole).
export function renderCgAdd(m: CgMember): string {
  const t = `${CG_FAMILY} ${CG_TABLE}`;
  return [
    `add element ${t} cg_members { ${q(m.path)} }`,
    ...(m.ipv6 === 'off' ? [`add element ${t} cg_v6off { ${q(m.path)} }`] : []),
    ...(m.mark !== undefined ? [`add element ${t} cg_mark { ${q(m.path)} : ${hex(m.mark)} }`] : []),
    ...(m.dns ? [`add element ${t} cg_dns { ${q(m.path)} : ${m.dns} }`] : []),
  ].join('\n') + '\n';
}

export function renderCgDelete(m: CgMember): string {
  const t = `${CG_FAMILY} ${CG_TABLE}`;
  return [
    ...(m.dns ? [`delete element ${t} cg_dns { ${q(m.path)} }`] : []),
    ...(m.mark !== undefined ? [`delete element ${t} cg_mark { ${q(m.path)} }`] : []),
    ...(m.ipv6 === 'off' ? [`delete element ${t} cg_v6off { ${q(m.path)} }`] : []),
    `delete element ${t} cg_members { ${q(m.path)} }`,
  ].join('\n') + '\n';
}
