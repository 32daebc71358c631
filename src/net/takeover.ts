// Bridge mode with --uplink IFACE: the record of what IFACE looked like before nsroute took it
// into a bridge, the `ip -batch` lines that move its addresses and routes, and the check that
// giving it back worked. Pure (sys/lan.ts runs the lines).
//
// `ip -4 -batch` (and `-6`) rejects a line of the other family as fatal, even with -force
// (PLATFORM.md), so every batch here holds one family only and runs with that family's flag.

export type Family = 4 | 6;

export interface TakenAddr {
  cidr: string;
  family: Family;
  broadcast?: string;
  // Address flags that `ip address add` takes back (nodad, noprefixroute, ...): without them
  // an address comes back different (e.g. going through DAD, or with a prefix route).
  flags?: string[];
  metric?: number;
}

// What an interface looks like before nsroute takes it into a bridge, to put back exactly.
export interface TakenOver {
  bridge: string;
  mac?: string;
  mtu?: number;
  addrs: TakenAddr[];
  routes: { family: Family; spec: string }[]; // `ip route` arguments without the dev
}

type Json = Record<string, unknown>;

// Flags `ip -j address show` prints as `"nodad": true` that `ip address add` accepts.
const ADDR_FLAGS = ['nodad', 'noprefixroute', 'home', 'mngtmpaddr', 'autojoin'] as const;

// One entry of `ip -j address show`'s addr_info, as a record entry (undefined: not recorded:
// IPv6 link-local addresses, which every link makes for itself).
export function takenAddr(a: Json): TakenAddr | undefined {
  if (a.family !== 'inet' && a.family !== 'inet6') return undefined;
  if (a.family === 'inet6' && a.scope === 'link') return undefined;
  const flags = ADDR_FLAGS.filter((f) => a[f] === true);
  return {
    cidr: `${String(a.local)}/${String(a.prefixlen)}`,
    family: a.family === 'inet' ? 4 : 6,
    ...(typeof a.broadcast === 'string' ? { broadcast: a.broadcast } : {}),
    ...(flags.length > 0 ? { flags: [...flags] } : {}),
    ...(typeof a.metric === 'number' ? { metric: a.metric } : {}),
  };
}

// `ip address add` arguments of a recorded address (without the dev).
export function addrArgs(a: TakenAddr): string {
  return [a.cidr, ...(a.broadcast ? ['broadcast', a.broadcast] : []), ...(a.metric !== undefined ? ['metric', String(a.metric)] : []), ...(a.flags ?? [])].join(' ');
}

export function addrsOf(t: TakenOver, family: Family): TakenAddr[] {
  return t.addrs.filter((a) => a.family === family);
}

// Takeover, one batch per family: the address leaves the interface, then joins the bridge.
export function moveToBridgeLines(t: TakenOver, iface: string, family: Family): string[] {
  return addrsOf(t, family).flatMap((a) => [`address del ${a.cidr} dev ${iface}`, `address add ${addrArgs(a)} dev ${t.bridge}`]);
}

export function routeLines(t: TakenOver, family: Family, dev: string): string[] {
  return t.routes.filter((r) => r.family === family).map((r) => `route replace ${r.spec} dev ${dev}`);
}

// What is still missing after giving an interface back: recorded addresses and routes it does
// not have (`now`: the interface read back the same way it was recorded).
export function missingAfterGiveBack(record: TakenOver, now: Pick<TakenOver, 'addrs' | 'routes'>): { addrs: string[]; routes: string[] } {
  const have = new Set(now.addrs.map((a) => a.cidr));
  const routes = new Set(now.routes.map((r) => `${r.family} ${r.spec}`));
  return {
    addrs: record.addrs.filter((a) => !have.has(a.cidr)).map((a) => a.cidr),
    routes: record.routes.filter((r) => !routes.has(`${r.family} ${r.spec}`)).map((r) => r.spec),
  };
}
