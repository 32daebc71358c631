// Parsers for `ip -j` output. Pure: they take the decoded JSON, so unit tests feed them
// recorded samples. Table ids come from `ip -N` (numeric), so named tables in
// /etc/iproute2/rt_tables cannot hide a table id from the allocator.

export interface LinkFact {
  index: number;
  name: string;
  up: boolean;
  kind?: string;
  alias?: string; // ifalias: nsroute's owner tag on the veths it made (net/tag.ts)
  loopback?: boolean; // lo (or any LOOPBACK device): never an uplink
  peerNetnsId?: number; // a veth's link_netnsid: the id of the namespace its peer is in
  master?: string; // the bridge (or bond) this interface is a port of
}

export interface AddrFact {
  dev: string;
  family: 4 | 6;
  local: string;
  prefix: number;
}

export interface RouteFact {
  dst: string; // "default" or "A.B.C.D[/N]"
  table: number;
  type: string;
  dev?: string;
  gateway?: string;
  metric?: number;
}

export interface RuleFact {
  priority: number;
  table?: number;
  fwmark?: number;
}

type Json = Record<string, unknown>;

const RT_TABLE_MAIN = 254;
const RTN_NAMES: Record<string, string> = { '1': 'unicast', '2': 'local', '3': 'broadcast', '6': 'blackhole', '7': 'unreachable', '8': 'prohibit' };

function asArray(json: unknown): Json[] {
  return Array.isArray(json) ? (json.filter((x) => x && typeof x === 'object') as Json[]) : [];
}

export function parseLinks(json: unknown): LinkFact[] {
  return asArray(json).map((l) => {
    const linkinfo = l.linkinfo as Json | undefined;
    return {
      index: Number(l.ifindex),
      name: String(l.ifname),
      up: Array.isArray(l.flags) && (l.flags as string[]).includes('UP'),
      kind: linkinfo && typeof linkinfo.info_kind === 'string' ? linkinfo.info_kind : undefined,
      ...(typeof l.ifalias === 'string' ? { alias: l.ifalias } : {}),
      ...((Array.isArray(l.flags) && (l.flags as string[]).includes('LOOPBACK')) || l.link_type === 'loopback' ? { loopback: true } : {}),
      ...(typeof l.link_netnsid === 'number' ? { peerNetnsId: l.link_netnsid } : {}),
      ...(typeof l.master === 'string' ? { master: l.master } : {}),
    };
  });
}

export function parseAddrs(json: unknown): AddrFact[] {
  const out: AddrFact[] = [];
  for (const l of asArray(json)) {
    for (const a of asArray(l.addr_info)) {
      if (a.family !== 'inet' && a.family !== 'inet6') continue;
      out.push({ dev: String(l.ifname), family: a.family === 'inet' ? 4 : 6, local: String(a.local), prefix: Number(a.prefixlen) });
    }
  }
  return out;
}

export function parseRoutes(json: unknown): RouteFact[] {
  return asArray(json).map((r) => ({
    dst: String(r.dst),
    table: r.table === undefined ? RT_TABLE_MAIN : Number(r.table),
    type: r.type === undefined ? 'unicast' : (RTN_NAMES[String(r.type)] ?? String(r.type)),
    dev: typeof r.dev === 'string' ? r.dev : undefined,
    gateway: typeof r.gateway === 'string' ? r.gateway : undefined,
    ...(typeof r.metric === 'number' ? { metric: r.metric } : {}),
  }));
}

export function parseRules(json: unknown): RuleFact[] {
  return asArray(json).map((r) => ({
    priority: Number(r.priority),
    table: r.table === undefined || Number.isNaN(Number(r.table)) ? undefined : Number(r.table),
    fwmark: typeof r.fwmark === 'string' ? Number(r.fwmark) : undefined,
  }));
}

// `ip -j route get` answers one route: which device and whether it needs a gateway.
export function parseRouteGet(json: unknown): { dev?: string; gateway?: string } | undefined {
  const r = asArray(json)[0];
  if (!r) return undefined;
  return { dev: typeof r.dev === 'string' ? r.dev : undefined, gateway: typeof r.gateway === 'string' ? r.gateway : undefined };
}
