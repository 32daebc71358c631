import { UserError } from '../errors.js';

// IPv4 prefixes as uint32 math: ip-cidr validates and finds the range, but has no subnet
// split or overlap test (PLATFORM.md), and `contains('junk')` quietly says false.
export interface Cidr4 {
  network: number;
  prefix: number;
}

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_RE = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);

export function isIPv4(text: string): boolean {
  return IPV4_RE.test(text);
}

// Dotted quad to uint32, one pass over the characters: called for every address and route of
// the host when a NAME is planned (~4000 at 1000 NAMEs), mostly before V8 has optimised it,
// where split and reduce took ~1 us each. Same result as summing the parts base 256, NaN for
// a part that is not digits (callers validate first: isIPv4, or the kernel's own output).
export function ipToInt(ip: string): number {
  let n = 0;
  let part = 0;
  let digits = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0) return NaN;
      n = n * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      digits++;
    } else {
      return NaN;
    }
  }
  return digits === 0 ? NaN : n * 256 + part;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

// `what` names the option or key in the error ("--via", "dns in slow.toml").
export function parseIPv4(text: string, what: string): string {
  if (!isIPv4(text)) {
    throw new UserError(`${what}: ${JSON.stringify(text)} is not an IPv4 address`, 'write it as four numbers, e.g. 192.168.2.1');
  }
  return text;
}

// IPv4 blocks with a fixed meaning (RFC 6890): no gateway, name server or link subnet can be
// in them (link-local excepted where a use exists). Checked here, not left to the kernel's
// error half-way through a change, or worse, accepted and silently unusable.
export const SPECIAL_IPV4: readonly { block: string; what: string }[] = [
  { block: '0.0.0.0/8', what: '"this network" (0.0.0.0/8)' },
  { block: '127.0.0.0/8', what: 'loopback (127.0.0.0/8)' },
  { block: '169.254.0.0/16', what: 'link-local (169.254.0.0/16)' },
  { block: '224.0.0.0/4', what: 'multicast (224.0.0.0/4)' },
  { block: '255.255.255.255/32', what: 'the broadcast address' },
  { block: '240.0.0.0/4', what: 'reserved (240.0.0.0/4)' },
];

function specialBlocks(): { block: Cidr4; what: string; linkLocal: boolean }[] {
  return SPECIAL_IPV4.map((s) => {
    const [ip, p] = s.block.split('/');
    return { block: blockOf(ip!, Number(p)), what: s.what, linkLocal: s.block.startsWith('169.254.') };
  });
}

// What makes `ip` unusable as a unicast address, or undefined. `allowLinkLocal`: a gateway or
// name server on a link-local address exists (cloud metadata DNS, some overlay networks).
export function specialIPv4(ip: string, allowLinkLocal = false): string | undefined {
  return specialBlocks().find((s) => cidrContains(s.block, ip) && !(allowLinkLocal && s.linkLocal))?.what;
}

// The special block a subnet overlaps, or undefined.
export function specialOverlap(c: Cidr4): string | undefined {
  return specialBlocks().find((s) => cidrsOverlap(s.block, c))?.what;
}

// "network address" / "broadcast address" when `ip` is one of those of `block` (blocks of
// /31 and /32 have neither, RFC 3021), else undefined.
export function networkOrBroadcast(block: Cidr4, ip: string): string | undefined {
  if (block.prefix >= 31 || !cidrContains(block, ip)) return undefined;
  const n = ipToInt(ip);
  if (n === block.network) return 'network address';
  if (n === block.network + cidrSize(block) - 1) return 'broadcast address';
  return undefined;
}

export function notACidr4(text: string, what: string): UserError {
  return new UserError(`${what}: ${JSON.stringify(text)} is not an IPv4 CIDR block`, 'write it as ADDRESS/PREFIX, e.g. 10.231.0.0/30');
}

// A block the user wrote (a profile's subnet, --subnet), checked with uint32 math, without
// loading ip-cidr, which a hot exec into a NAME whose profile names a subnet does not otherwise
// need (129 KB of code with ip-address and jsbn). The planner's net/cidr.ts parseCidr4 is this
// check after ip-cidr's own (test/unit/net/addresses.test.ts: the same verdicts and messages).
export function checkCidr4(text: string, what: string): Cidr4 {
  const parts = text.split('/');
  const [addr, prefixText] = parts;
  const prefix = Number(prefixText);
  if (parts.length !== 2 || !isIPv4(addr ?? '') || !/^\d{1,2}$/.test(prefixText ?? '') || prefix > 32) throw notACidr4(text, what);
  const network = (ipToInt(addr!) & mask(prefix)) >>> 0;
  if (network !== ipToInt(addr!)) {
    throw new UserError(`${what}: ${text} has host bits set`, `did you mean ${intToIp(network)}/${prefix}?`);
  }
  return { network, prefix };
}

export function cidrToString(c: Cidr4): string {
  return `${intToIp(c.network)}/${c.prefix}`;
}

export function cidrSize(c: Cidr4): number {
  return 2 ** (32 - c.prefix);
}

export function cidrContains(c: Cidr4, ip: string): boolean {
  return ((ipToInt(ip) & mask(c.prefix)) >>> 0) === c.network;
}

export function cidrsOverlap(a: Cidr4, b: Cidr4): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.network & mask(p)) >>> 0) === ((b.network & mask(p)) >>> 0);
}

// Any address with a prefix ("10.0.0.5/24" or a bare address meaning /32) as the block it lies in.
export function blockOf(address: string, prefix: number): Cidr4 {
  return { network: (ipToInt(address) & mask(prefix)) >>> 0, prefix };
}

// Host end and namespace end of the veth link inside a subnet: on a /31 both addresses
// are usable (RFC 3021); otherwise skip the network address.
export function linkAddresses(subnet: Cidr4): { host: string; ns: string } {
  if (subnet.prefix > 31) throw new UserError(`subnet ${cidrToString(subnet)} is too small`, 'use a /31, a /30 or a larger block');
  if (subnet.prefix === 31) return { host: intToIp(subnet.network), ns: intToIp(subnet.network + 1) };
  return { host: intToIp(subnet.network + 1), ns: intToIp(subnet.network + 2) };
}

export const DEFAULT_POOLS: readonly string[] = ['10.231.0.0/16', '172.29.0.0/16'];
export const DEFAULT_PREFIX = 30;

// First block of `prefix` bits in the pools that overlaps nothing taken (host addresses,
// host routes, other namespaces). Returns undefined when every pool is full. One sort of the
// taken blocks and one walk over them per pool: with 1000 namespaces taken, not 1000 x 1000
// overlap tests.
export function allocateSubnet(pools: readonly Cidr4[], taken: readonly Cidr4[], prefix = DEFAULT_PREFIX): Cidr4 | undefined {
  const step = 2 ** (32 - prefix);
  const used = mergedRanges(taken);
  for (const pool of pools) {
    const end = pool.network + cidrSize(pool);
    let n = pool.network;
    let i = 0;
    while (n + step <= end) {
      while (i < used.length && used[i]![1] <= n) i++; // ranges wholly before the candidate
      const next = used[i];
      if (!next || next[0] >= n + step) return { network: n, prefix };
      // The candidate overlaps a taken range: the next aligned candidate at or past its end.
      n = Math.ceil(next[1] / step) * step;
    }
  }
  return undefined;
}

// Blocks as sorted, merged [start, end) ranges of uint32 addresses (end may be 2^32).
export function mergedRanges(blocks: readonly Cidr4[]): [number, number][] {
  const ranges = blocks.map((b) => [b.network, b.network + cidrSize(b)] as [number, number]).sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [s, e] of ranges) {
    const last = merged[merged.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  return merged;
}

// A block recorded in nsroute's own state ("10.231.0.4/30"), validated with plain uint32
// math: checked as strictly as parseCidr4, without ip-cidr's BigInteger parse, which costs
// too much when done for each of 1000 namespaces on every command. User input goes through
// parseCidr4.
export function parseStateCidr4(text: string): Cidr4 {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? '' : text.slice(0, slash);
  const prefixText = slash < 0 ? '' : text.slice(slash + 1);
  if (!isIPv4(addr) || !/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32) {
    throw new UserError(`state: ${JSON.stringify(text)} is not an IPv4 CIDR block`, 'the state file is damaged: move it away, then `nsroute gc`');
  }
  const prefix = Number(prefixText);
  const network = ipToInt(addr);
  if (((network & mask(prefix)) >>> 0) !== network) {
    throw new UserError(`state: ${text} has host bits set`, 'the state file is damaged: move it away, then `nsroute gc`');
  }
  return { network, prefix };
}

// IPv6 (--ipv6 nat): a ULA /64 per namespace, derived from its IPv4 block so that it is
// unique exactly when that is, and needs no allocator or state of its own:
// 10.231.0.4/30 -> fd6e:7372:ae7:4::/64 (host end ::1, namespace end ::2). Both ends also
// get a fixed link-local address (fe80::1, fe80::2): neighbour discovery needs one, and a
// fixed one needs no duplicate-address detection (which would delay the first packets).
export const ULA_PREFIX = 'fd6e:7372';
export const LINK_LOCAL_HOST = 'fe80::1';
export const LINK_LOCAL_NS = 'fe80::2';

export function ula64For(subnet: Cidr4): { subnet6: string; host6: string; ns6: string } {
  const hi = (subnet.network >>> 16).toString(16);
  const lo = (subnet.network & 0xffff).toString(16);
  const base = `${ULA_PREFIX}:${hi}:${lo}`;
  return { subnet6: `${base}::/64`, host6: `${base}::1`, ns6: `${base}::2` };
}

// Loose IPv6 syntax check (hex groups, at most one ::, optional embedded IPv4); the kernel
// has the last word when the address is used.
export function isIPv6(text: string): boolean {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(':')) return false;
  const doubles = text.split('::').length - 1;
  if (doubles > 1) return false;
  const groups = text.split(':').filter((g) => g !== '');
  const v4tail = groups.length > 0 && isIPv4(groups[groups.length - 1]!);
  const hexGroups = v4tail ? groups.slice(0, -1) : groups;
  if (!hexGroups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  const count = hexGroups.length + (v4tail ? 2 : 0);
  return doubles === 1 ? count <= 7 : count === 8;
}

export function parseIPv6(text: string, what: string): string {
  if (!isIPv6(text)) {
    throw new UserError(`${what}: ${JSON.stringify(text)} is not an IPv6 address`, 'write it like fd00::1 or fe80::1');
  }
  return text.toLowerCase();
}

// The 8 groups of a valid IPv6 address (isIPv6), as numbers.
function ipv6Groups(text: string): number[] {
  let t = text.toLowerCase();
  const tail = t.split(':').pop()!;
  if (isIPv4(tail)) {
    const n = ipToInt(tail);
    t = `${t.slice(0, -tail.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, rest] = t.split('::');
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const fill = rest === undefined ? [] : Array(8 - h.length - r.length).fill('0');
  return [...h, ...fill, ...r].map((g) => parseInt(g, 16));
}

// What makes a valid IPv6 address unusable as a unicast next hop, or undefined.
export function specialIPv6(text: string): string | undefined {
  const g = ipv6Groups(text);
  if (g.every((x) => x === 0)) return 'the unspecified address (::)';
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return 'loopback (::1)';
  if (g[0]! >= 0xff00) return 'multicast (ff00::/8)';
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return 'an IPv4-mapped address (::ffff:0:0/96)';
  return undefined;
}
