import { parse as parseToml } from 'smol-toml';
import { UserError } from '../errors.js';
import { blockOf, checkCidr4, cidrContains, parseIPv4, parseIPv6, cidrToString, networkOrBroadcast, specialIPv4, specialIPv6, specialOverlap } from '../net/addresses.js';
import { validateName } from '../net/names.js';
import { parseAllow } from '../policy/allow.js';
import { checkPublishList, parsePublish, type PublishedPort } from '../net/publish.js';
import { parseRate } from '../net/rate.js';

// What the user asked for, from /etc/nsroute/NAME.toml and the command line (flags win).
export interface RouteOptions {
  via?: string;
  dev?: string;
  dns?: string[];
  subnet?: string;
  ipv6?: string;
  via6?: string;
  mode?: string;
  bridge?: string;
  uplink?: string;
  address?: string;
  dhcp?: boolean;
  publish?: string[]; // --publish (repeatable) / publish = [...]
  rateDown?: string; // --rate-down / rate_down
  rateUp?: string; // --rate-up / rate_up
}

// nat: the namespace behind the host (default). bridge / macvlan: the namespace as its own
// host on the uplink's LAN (seed 004): its own address there, its own gateway, no NAT.
// replies: a host mode, no namespace (seed 003): connections arriving on --dev are answered
// via --via on it, whatever the main table says (plan/replies.ts).
// cgroup: no namespace; the programs of NAME's cgroup stay in the host's network and their
// sockets are routed by mark (seeds 000-002, plan/cgroup.ts).
export type Mode = 'nat' | 'bridge' | 'macvlan' | 'cgroup' | 'replies';
export const MODES: readonly Mode[] = ['nat', 'bridge', 'macvlan', 'cgroup', 'replies'];

export type Ipv6Mode = 'off' | 'nat';
export const IPV6_MODES: readonly Ipv6Mode[] = ['off', 'nat'];

// A validated request: every address parsed, nothing looked up on the host yet.
export interface Profile {
  name: string;
  via?: string;
  dev?: string;
  dns: string[];
  subnet?: string;
  ipv6?: Ipv6Mode; // undefined: not asked for (off, or whatever a running namespace has)
  via6?: string;
  mode?: Mode; // undefined: nat
  bridge?: string; // bridge mode: an existing bridge to join
  uplink?: string; // bridge mode: the interface to take over into a bridge; macvlan: the parent
  address?: string; // bridge/macvlan: the namespace's own address on the LAN (CIDR)
  dhcp?: boolean; // bridge/macvlan: a DHCP client inside the namespace instead
  publish?: PublishedPort[]; // nat: ports published on the host (net/publish.ts); undefined: not asked
  rateDown?: string; // bandwidth caps, "Nbit" (net/rate.ts)
  rateUp?: string;
}

const KEYS = ['via', 'dev', 'dns', 'subnet', 'ipv6', 'via6', 'mode', 'bridge', 'uplink', 'address', 'dhcp'] as const;
// Keys of the inbound/shaping options, with the RouteOptions field each fills.
const INBOUND_KEYS = { publish: 'publish', rate_down: 'rateDown', rate_up: 'rateUp' } as const;
const ALL_KEYS = [...KEYS, ...Object.keys(INBOUND_KEYS)];
const IFACE_RE = /^[^\s/:]{1,15}$/;
export const MAX_DNS = 3;

// Parses a profile file's text. `file` is only used to name the file in errors.
export function parseProfileToml(text: string, file: string): RouteOptions {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    const first = (e as Error).message.split('\n')[0];
    throw new UserError(`profile ${file} is not valid TOML: ${first}`, `fix the file (keys: ${ALL_KEYS.join(', ')})`);
  }
  const out: RouteOptions = {};
  for (const [key, value] of Object.entries(doc)) {
    // Who may use NAME without root (policy/allow.ts): checked here so every command refuses a bad one.
    if (key === 'allow') {
      parseAllow(value, `profile ${file}`);
      continue;
    }
    if (!ALL_KEYS.includes(key)) {
      throw new UserError(`profile ${file}: unknown key ${JSON.stringify(key)}`, `the keys are ${ALL_KEYS.join(', ')}, allow`);
    }
    if (key === 'publish') {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) {
        throw new UserError(`profile ${file}: publish must be a list of port mappings`, 'write e.g. publish = ["8080:80", "51413:51413/udp"]');
      }
      out.publish = list as string[];
    } else if (key === 'rate_down' || key === 'rate_up') {
      if (typeof value !== 'string') throw new UserError(`profile ${file}: ${key} must be a string`, `write e.g. ${key} = "20mbit"`);
      out[INBOUND_KEYS[key]] = value;
    } else if (key === 'dhcp') {
      if (typeof value !== 'boolean') throw new UserError(`profile ${file}: dhcp must be true or false`, 'write dhcp = true');
      out.dhcp = value;
    } else if (key === 'dns') {
      const list = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(list) || !list.every((v) => typeof v === 'string')) {
        throw new UserError(`profile ${file}: dns must be a list of addresses`, 'write e.g. dns = ["192.168.2.1"]');
      }
      out.dns = list as string[];
    } else {
      if (typeof value !== 'string') {
        throw new UserError(`profile ${file}: ${key} must be a string`, `write e.g. ${key} = "..."`);
      }
      out[key as 'via' | 'dev' | 'subnet' | 'ipv6' | 'via6' | 'mode' | 'bridge' | 'uplink' | 'address'] = value;
    }
  }
  return out;
}

// Flags override the profile key by key; everything is validated here, before any lookup
// on the host, so bad input never gets as far as a change.
export function resolveProfile(name: string, fromFile: RouteOptions | undefined, flags: RouteOptions, file?: string): Profile {
  validateName(name);
  const where = (key: string) => (flags[key as keyof RouteOptions] !== undefined || !file ? `--${key}` : `${key} in ${file}`);
  const merged: RouteOptions = { ...fromFile };
  for (const key of KEYS) if (flags[key] !== undefined && !(key === 'dns' && flags.dns!.length === 0)) (merged as Record<string, unknown>)[key] = flags[key];

  const profile: Profile = { name, dns: [] };
  if (merged.via !== undefined) profile.via = parseUnicast(merged.via, where('via'), 'pass the address of the router on that network');
  if (merged.dev !== undefined) {
    if (!IFACE_RE.test(merged.dev)) {
      throw new UserError(`${where('dev')}: ${JSON.stringify(merged.dev)} is not an interface name`, '`ip link` lists interfaces');
    }
    profile.dev = merged.dev;
  }
  // glibc reads at most 3 nameserver lines (MAXNS): a 4th would be written and never asked.
  if ((merged.dns?.length ?? 0) > MAX_DNS) {
    throw new UserError(`${where('dns')}: ${merged.dns!.length} name servers given, but the resolver asks at most ${MAX_DNS}`, `give up to ${MAX_DNS}`);
  }
  for (const server of merged.dns ?? []) {
    // A loopback server would be the namespace's own lo, where nothing answers.
    profile.dns.push(parseUnicast(server, where('dns'), "give a name server's own address (for the host's stub resolver, its upstream server)"));
  }
  if (merged.subnet !== undefined) {
    const subnet = checkCidr4(merged.subnet, where('subnet'));
    if (subnet.prefix > 31) {
      throw new UserError(`${where('subnet')}: /${subnet.prefix} leaves no room for two link addresses`, 'use a /31, a /30 or a larger block');
    }
    const special = specialOverlap(subnet);
    if (special) throw new UserError(`${where('subnet')}: ${cidrToString(subnet)} overlaps ${special}, which cannot carry a link`, 'use a private block, e.g. 10.231.0.0/30');
    profile.subnet = cidrToString(subnet);
  }
  if (merged.ipv6 !== undefined) {
    if (!(IPV6_MODES as readonly string[]).includes(merged.ipv6)) {
      throw new UserError(`${where('ipv6')}: ${JSON.stringify(merged.ipv6)} is not an IPv6 mode`, `use one of ${IPV6_MODES.join(', ')}`);
    }
    profile.ipv6 = merged.ipv6 as Ipv6Mode;
  }
  resolveLanMode(profile, merged, where);
  resolveInbound(profile, fromFile, flags, file);
  if (merged.via6 !== undefined) {
    profile.via6 = parseIPv6(merged.via6, where('via6'));
    const special = specialIPv6(profile.via6);
    if (special) throw new UserError(`${where('via6')}: ${profile.via6} is ${special}, not a router`, 'pass the IPv6 address of the router on that link');
    if (profile.ipv6 !== 'nat') throw new UserError(`${where('via6')} only applies to IPv6 in nat mode`, 'add --ipv6 nat, or leave --via6 out');
    if (!profile.via && !profile.dev) throw new UserError(`${where('via6')} needs an uplink`, 'add --via GATEWAY (or --dev IFACE) for the same link');
  }
  return profile;
}

// --mode replies: --dev and --via, nothing else (no namespace: no DNS, link, LAN or IPv6 of
// its own). Whether the gateway is on --dev's link is checked against the host (plan/replies.ts).
function resolveRepliesMode(profile: Profile, merged: RouteOptions, where: (key: string) => string): void {
  for (const k of ['dns', 'subnet', 'ipv6', 'via6', 'bridge', 'uplink', 'address', 'dhcp'] as const) {
    const v = merged[k];
    if (v === undefined || v === false || (Array.isArray(v) && v.length === 0)) continue;
    throw new UserError(`${where(k)} does not apply to --mode replies`, `leave it out: replies mode is a policy for the host's own connections, with no namespace (only --dev and --via)`);
  }
  if (profile.dev === undefined) throw new UserError('--mode replies needs --dev IFACE, the interface whose connections are answered through it', 'add --dev IFACE --via GATEWAY');
  if (profile.via === undefined) throw new UserError('--mode replies needs --via GATEWAY, the router on --dev the replies go to', 'add --via GATEWAY');
}

// --publish / --rate-down / --rate-up (flags win over the profile's publish, rate_down, rate_up).
function resolveInbound(profile: Profile, fromFile: RouteOptions | undefined, flags: RouteOptions, file: string | undefined): void {
  const fromFlag = (k: 'publish' | 'rateDown' | 'rateUp') => flags[k] !== undefined && !(k === 'publish' && flags.publish!.length === 0);
  const pick = <K extends 'publish' | 'rateDown' | 'rateUp'>(k: K, flag: string, key: string) =>
    fromFlag(k) ? { value: flags[k], what: flag } : fromFile?.[k] !== undefined ? { value: fromFile[k], what: `${key} in ${file ?? 'the profile'}` } : undefined;
  const mode = profile.mode ?? 'nat';
  const publish = pick('publish', '--publish', 'publish');
  // Host modes have no namespace: nothing to publish into, no link of their own to shape.
  if (mode === 'cgroup' || mode === 'replies') {
    const r = (publish && publish.value!.length > 0 ? publish : undefined) ?? pick('rateDown', '--rate-down', 'rate_down') ?? pick('rateUp', '--rate-up', 'rate_up');
    if (r) throw new UserError(`${r.what} does not apply to --mode ${mode}`, `--mode ${mode} has no namespace to publish ports of or to shape; use a namespace (--mode nat) for that`);
  }
  if (publish) {
    if (mode !== 'nat' && publish.value!.length > 0) {
      throw new UserError(`${publish.what} applies to --mode nat only`, `in ${mode} mode the namespace has its own address on the LAN: connect to it there`);
    }
    profile.publish = (publish.value as string[]).map((s) => parsePublish(s, publish.what));
    checkPublishList(profile.publish, publish.what);
  }
  for (const [k, flag, key] of [['rateDown', '--rate-down', 'rate_down'], ['rateUp', '--rate-up', 'rate_up']] as const) {
    const r = pick(k, flag, key);
    if (!r) continue;
    if (mode === 'macvlan') throw new UserError(`${r.what} applies to --mode nat and bridge`, 'a macvlan has no host end to shape; use --mode bridge or nat');
    profile[k] = parseRate(r.value as string, r.what);
  }
}

// An IPv4 address that can be a gateway or a name server: not 0/8, loopback, multicast,
// reserved or broadcast (link-local is allowed: such routers and servers exist).
function parseUnicast(text: string, what: string, hint: string): string {
  const ip = parseIPv4(text, what);
  const special = specialIPv4(ip, true);
  if (special) throw new UserError(`${what}: ${ip} is ${special}, not a host's address`, hint);
  return ip;
}

function parseIface(text: string, what: string): string {
  if (!IFACE_RE.test(text)) throw new UserError(`${what}: ${JSON.stringify(text)} is not an interface name`, '`ip link` lists interfaces');
  return text;
}

// --mode and its companions: which keys go with which mode, checked before any lookup.
function resolveLanMode(profile: Profile, merged: RouteOptions, where: (key: string) => string): void {
  const mode = merged.mode ?? 'nat';
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new UserError(`${where('mode')}: ${JSON.stringify(mode)} is not a mode`, `use one of ${MODES.join(', ')}`);
  }
  if (merged.mode !== undefined) profile.mode = mode as Mode;
  if (mode === 'replies') return resolveRepliesMode(profile, merged, where);
  const lanKeys = (['bridge', 'uplink', 'address', 'dhcp'] as const).filter((k) => merged[k] !== undefined && merged[k] !== false);
  if (mode === 'cgroup') {
    const k = lanKeys[0];
    if (k) throw new UserError(`${where(k)} applies to --mode bridge or macvlan`, 'in cgroup mode the programs stay in the host\'s network: there is no LAN address of their own; leave it out');
    if (merged.subnet !== undefined) throw new UserError(`${where('subnet')} does not apply to --mode cgroup`, 'cgroup mode has no link between a namespace and the host, so no subnet: leave it out');
    return;
  }
  if (mode === 'nat') {
    const k = lanKeys[0];
    if (k) throw new UserError(`${where(k)} applies to --mode bridge or macvlan`, `add --mode bridge (or macvlan), or leave --${k} out`);
    return;
  }
  for (const k of ['dev', 'subnet', 'ipv6', 'via6'] as const) {
    if (merged[k] !== undefined) throw new UserError(`${where(k)} applies to --mode nat only`, `leave it out in ${mode} mode: the namespace is its own host on the LAN`);
  }
  if (mode === 'bridge') {
    if ((merged.bridge === undefined) === (merged.uplink === undefined)) {
      throw new UserError('--mode bridge needs either --bridge BR (an existing bridge) or --uplink IFACE (nsroute makes the bridge)', 'give exactly one of them');
    }
    if (merged.bridge !== undefined) profile.bridge = parseIface(merged.bridge, where('bridge'));
  } else if (merged.bridge !== undefined) {
    throw new UserError(`${where('bridge')} applies to --mode bridge`, 'macvlan sits on --uplink IFACE');
  } else if (merged.uplink === undefined) {
    throw new UserError('--mode macvlan needs --uplink IFACE', 'name the interface of the LAN the namespace should be on');
  }
  if (merged.uplink !== undefined) profile.uplink = parseIface(merged.uplink, where('uplink'));
  if (merged.dhcp === true) {
    if (merged.address !== undefined || merged.via !== undefined) {
      throw new UserError(`--dhcp and ${merged.address !== undefined ? where('address') : where('via')} exclude each other`, 'the DHCP server gives the address and the gateway; leave them out, or drop --dhcp');
    }
    profile.dhcp = true;
    return;
  }
  if (merged.address === undefined) {
    throw new UserError(`--mode ${mode} needs the namespace's own address on the LAN`, 'give --address CIDR --via GATEWAY, or --dhcp');
  }
  const slash = merged.address.indexOf('/');
  const ip = slash < 0 ? merged.address : merged.address.slice(0, slash);
  parseIPv4(ip, where('address'));
  const prefix = slash < 0 ? NaN : Number(merged.address.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 1 || prefix > 30) {
    throw new UserError(`${where('address')}: ${JSON.stringify(merged.address)} needs the LAN's prefix length`, 'write it as ADDRESS/PREFIX, e.g. 192.168.1.50/24');
  }
  profile.address = `${ip}/${prefix}`;
  const special = specialIPv4(ip, true);
  if (special) throw new UserError(`${where('address')}: ${ip} is ${special}, not a LAN address`, "give the namespace's own address on the LAN");
  const lanBlock = blockOf(ip, prefix);
  const own = networkOrBroadcast(lanBlock, ip);
  if (own) throw new UserError(`${where('address')}: ${ip} is the ${own} of ${cidrToString(lanBlock)}`, 'give the namespace a host address inside it');
  if (profile.via === undefined) throw new UserError(`${where('address')} needs --via, the LAN's router`, 'add --via GATEWAY, or use --dhcp');
  if (!cidrContains(lanBlock, profile.via)) {
    throw new UserError(`gateway ${profile.via} is not on the LAN of ${profile.address}`, 'give the router of that LAN, or the right prefix');
  }
  const gw = networkOrBroadcast(lanBlock, profile.via);
  if (gw) throw new UserError(`${where('via')}: ${profile.via} is the ${gw} of ${cidrToString(lanBlock)}, not a router`, 'give the address of the LAN\'s router');
  if (profile.via === ip) throw new UserError(`${where('address')} is the gateway's own address`, 'give the namespace an address of its own');
}
