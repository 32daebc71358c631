import { UserError } from '../errors.js';
import { parseIPv4, specialIPv4 } from './addresses.js';
import { hex, NFT_FAMILY, NFT_TABLE } from './nft.js';
import { MARK_TAG as HOST_MARK } from './ids.js';

// Published ports (`--publish [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp]`): a connection to HOSTPORT
// on the host reaches PORT inside a nat namespace, the client's address kept (DNAT, no SNAT).
// Pure: parsing, and the nft objects, which live in nsroute's own table (net/nft.ts) in chains
// and maps of their own (all named publish_*), so that other features' objects stay apart.
//
// Per packet the cost does not grow with the number of published ports or namespaces: one
// lookup in a map keyed by (protocol, port) and one keyed by (address, protocol, port), never
// a rule per port. DNAT only for traffic addressed to the host itself (`fib daddr type local`):
// CNI portmap's advisory GHSA-jv3w-x3r3-g6rm was DNAT of traffic to every address with that
// port, which hijacks connections the host merely forwards.
//
// Replies by the way they came (seed 003's recipe, nsroute's marks): a new connection DNATed to
// a namespace gets a ct mark saying where its replies go: the namespace's uplink mark when it
// came in by that uplink's device (its table routes the replies back out there), else the
// host mark (the host's main table, which routes them by the interface of the host's route to
// the client). The original direction's packets carry it too, so that strict reverse-path
// filtering checks them against the same table (src_valid_mark, set on the uplink by
// nsroute's uplink step). Replies coming back from the namespace get it from the ct mark in
// nsroute's prerouting chain (net/nft.ts), which sets a namespace's own mark only on packets
// of connections the namespace opened (ct direction original).
//
// The host itself: an output-path DNAT makes HOSTPORT work from the host to its own addresses
// and to 127.0.0.1. A packet from 127.0.0.1 may only leave by a device with route_localnet=1
// (the kernel calls it a martian otherwise), so the publish step sets that on the namespace's
// own host veth (nsroute's interface, gone with it) and masquerades such packets to the
// veth's address (the namespace cannot answer 127.0.0.1). route_localnet also lets packets
// *to* 127/8 in by that veth, which would let the namespace reach the host's loopback-only
// services (kube-proxy's CVE-2020-8558): publish_guard drops anything to or from 127/8
// arriving from a namespace before routing.

import { publishSpec, type PublishedPort } from './publish-spec.js';

export { publishSpec, type PublishedPort } from './publish-spec.js';

function parsePort(text: string, what: string, spec: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new UserError(`${what}: ${JSON.stringify(spec)} has port ${JSON.stringify(text)}, not 1-65535`, 'write [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80');
  }
  return n;
}

// One `--publish` value (or an element of the profile's `publish` list).
export function parsePublish(spec: string, what: string): PublishedPort {
  const hint = 'write [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80 or 192.168.1.5:51413:51413/udp';
  const slash = spec.indexOf('/');
  const body = slash < 0 ? spec : spec.slice(0, slash);
  const protoText = slash < 0 ? 'tcp' : spec.slice(slash + 1);
  if (protoText !== 'tcp' && protoText !== 'udp') throw new UserError(`${what}: ${JSON.stringify(spec)} has protocol ${JSON.stringify(protoText)}`, `use /tcp or /udp (${hint})`);
  const parts = body.split(':');
  if (parts.length < 2 || parts.length > 3) throw new UserError(`${what}: ${JSON.stringify(spec)} is not a port mapping`, hint);
  const out: PublishedPort = { hostPort: 0, port: 0, proto: protoText };
  if (parts.length === 3) {
    const addr = parseIPv4(parts[0]!, what);
    const special = specialIPv4(addr, false);
    if (special && addr !== '127.0.0.1') throw new UserError(`${what}: ${addr} is ${special}, not an address of the host`, 'give one of the host\'s IPv4 addresses (`ip -4 addr`), or leave it out for all of them');
    out.hostAddr = addr;
  }
  out.hostPort = parsePort(parts[parts.length - 2]!, what, spec);
  out.port = parsePort(parts[parts.length - 1]!, what, spec);
  return out;
}

// Whether two published ports would take the same connections (same protocol and host port,
// and an address in common: none given means all of them).
export function publishClash(a: PublishedPort, b: PublishedPort): boolean {
  return a.proto === b.proto && a.hostPort === b.hostPort && (!a.hostAddr || !b.hostAddr || a.hostAddr === b.hostAddr);
}

// A list given by the user: no two entries that clash with each other.
export function checkPublishList(list: readonly PublishedPort[], what: string): void {
  for (const [i, p] of list.entries()) {
    const dup = list.slice(0, i).find((q) => publishClash(p, q));
    if (dup) throw new UserError(`${what}: ${publishSpec(p)} and ${publishSpec(dup)} take the same port`, 'publish each host port once');
  }
}

// What one namespace contributes to the publish_* objects.
export interface PublishMember {
  nsAddress: string;
  ports: readonly PublishedPort[];
  // Its uplink (--via/--dev): replies to connections that came in by `dev` leave by `mark`'s table.
  uplink?: { dev: string; mark: number };
}

function elementsOf(m: PublishMember): { any: string[]; addr: string[]; mark: string[] } {
  const target = (p: PublishedPort) => `${m.nsAddress} . ${p.port}`;
  return {
    any: m.ports.filter((p) => !p.hostAddr).map((p) => `${p.proto} . ${p.hostPort} : ${target(p)}`),
    addr: m.ports.filter((p) => p.hostAddr).map((p) => `${p.hostAddr} . ${p.proto} . ${p.hostPort} : ${target(p)}`),
    mark: m.uplink && m.ports.length > 0 ? [`${JSON.stringify(m.uplink.dev)} . ${m.nsAddress} : ${hex(m.uplink.mark)}`] : [],
  };
}

function elements(items: readonly string[]): string {
  return items.length > 0 ? ` elements = { ${items.join(', ')} };` : '';
}

// The publish_* objects of nsroute's table, for the table rendered whole (net/nft.ts).
// Rendered (empty) with every table so that a namespace's elements can always be added.
export function renderPublishObjects(members: readonly PublishMember[]): string {
  const all = members.map(elementsOf);
  const any = all.flatMap((e) => e.any);
  const addr = all.flatMap((e) => e.addr);
  const mark = all.flatMap((e) => e.mark);
  const dnat = [
    `meta nfproto ipv4 fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @publish_addr`,
    `meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @publish_any`,
  ];
  return `\tmap publish_any { type inet_proto . inet_service : ipv4_addr . inet_service;${elements(any)} }
\tmap publish_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;${elements(addr)} }
\tmap publish_reply_mark { type ifname . ipv4_addr : mark;${elements(mark)} }
\tchain publish_guard {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tiifname @ns_ifaces ip daddr 127.0.0.0/8 drop
\t\tiifname @ns_ifaces ip saddr 127.0.0.0/8 drop
\t}
\tchain publish_dnat {
\t\ttype nat hook prerouting priority dstnat; policy accept;
${dnat.map((r) => `\t\t${r}`).join('\n')}
\t}
\tchain publish_output {
\t\ttype nat hook output priority -100; policy accept;
${dnat.map((r) => `\t\t${r}`).join('\n')}
\t}
\tchain publish_mark {
\t\ttype filter hook prerouting priority dstnat + 10; policy accept;
\t\tct state new ct status dnat ip daddr @ns_nets4 ct mark set ${hex(HOST_MARK)}
\t\tct state new ct status dnat ip daddr @ns_nets4 ct mark set iifname . ip daddr map @publish_reply_mark
\t\tct direction original ct status dnat ip daddr @ns_nets4 meta mark set ct mark
\t}
\tchain publish_postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 127.0.0.0/8 oifname @ns_ifaces masquerade
\t}
`;
}

// One namespace's elements, in one transaction (fails as a whole when the table or its maps
// are missing, or an element clashes: the caller renders the table whole).
export function renderPublishAdd(m: PublishMember): string {
  return renderElements('add', m);
}

export function renderPublishDelete(m: PublishMember): string {
  return renderElements('delete', m);
}

function renderElements(op: 'add' | 'delete', m: PublishMember): string {
  const t = `${NFT_FAMILY} ${NFT_TABLE}`;
  const e = elementsOf(m);
  // Deleting takes the key only.
  const key = (s: string) => (op === 'delete' ? s.slice(0, s.lastIndexOf(' : ')) : s);
  const lines = [
    ...(e.any.length ? [`${op} element ${t} publish_any { ${e.any.map(key).join(', ')} }`] : []),
    ...(e.addr.length ? [`${op} element ${t} publish_addr { ${e.addr.map(key).join(', ')} }`] : []),
    ...(e.mark.length ? [`${op} element ${t} publish_reply_mark { ${e.mark.map(key).join(', ')} }`] : []),
  ];
  return lines.length ? lines.join('\n') + '\n' : '';
}

type Json = Record<string, unknown>;

// The published ports `nft -j list ruleset` shows for a namespace address (what a repair
// compares, and what gc reads back when the run dir was lost).
export function publishedIn(rulesetJson: unknown, nsAddress: string): PublishedPort[] {
  const list = (rulesetJson as { nftables?: unknown[] } | undefined)?.nftables;
  if (!Array.isArray(list)) return [];
  const out: PublishedPort[] = [];
  for (const it of list) {
    const map = (it as { map?: Json } | null)?.map;
    if (!map || map.family !== NFT_FAMILY || map.table !== NFT_TABLE || (map.name !== 'publish_any' && map.name !== 'publish_addr') || !Array.isArray(map.elem)) continue;
    for (const el of map.elem as unknown[]) {
      const pair = Array.isArray(el) ? el : undefined;
      const key = (pair?.[0] as { concat?: unknown[] } | undefined)?.concat;
      const val = (pair?.[1] as { concat?: unknown[] } | undefined)?.concat;
      if (!key || !val || val[0] !== nsAddress) continue;
      const [addr, proto, hostPort] = map.name === 'publish_addr' ? key : [undefined, ...key];
      if ((proto !== 'tcp' && proto !== 'udp') || typeof hostPort !== 'number' || typeof val[1] !== 'number') continue;
      out.push({ ...(typeof addr === 'string' ? { hostAddr: addr } : {}), hostPort, port: val[1], proto });
    }
  }
  return out.sort((a, b) => a.hostPort - b.hostPort || a.proto.localeCompare(b.proto));
}

// Whether the ruleset holds nsroute's publish maps at all (a table of an older nsroute has none).
export function hasPublishObjects(rulesetJson: unknown): boolean {
  const list = (rulesetJson as { nftables?: unknown[] } | undefined)?.nftables;
  return Array.isArray(list) && list.some((it) => {
    const map = (it as { map?: Json } | null)?.map;
    return !!map && map.family === NFT_FAMILY && map.table === NFT_TABLE && map.name === 'publish_any';
  });
}
