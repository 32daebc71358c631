import { UserError } from '../errors.js';
import {
  DEFAULT_POOLS,
  allocateSubnet,
  blockOf,
  cidrContains,
  cidrToString,
  cidrsOverlap,
  isIPv4,
  linkAddresses,
  networkOrBroadcast,
  LINK_LOCAL_HOST,
  LINK_LOCAL_NS,
  parseStateCidr4,
  ula64For,
  type Cidr4,
} from '../net/addresses.js';
import { parseCidr4 } from '../net/cidr.js';
import { NS_IFACE, hostIfaceName } from '../net/names.js';
import { renderGaiConf, renderResolvConf, chooseDnsServers } from '../net/resolv.js';
import { hex } from '../net/nft.js';
import { parseTag, renderTag } from '../net/tag.js';
import { renderNsswitchConf } from '../net/resolv.js';
import type { Profile } from '../profile/profile.js';
import type { HostFacts, LanConfig, NamespaceConfig, Step, Uplink } from './types.js';
import { buildCgroupPlan } from './cgroup.js';
import { checkInbound, inboundSteps } from './inbound.js';

// Routing tables, marks and the rule priority nsroute uses. The rule sits before the main
// table (32766) and before the rules VPN clients add (wg-quick 32764/32765, Tailscale 52xx),
// so "around the VPN" works; after `local` (0) so the host's own addresses stay local.
// The bases are configurable (net/ids.ts, /etc/nsroute/nsroute.conf); these are live bindings.
export { TABLE_BASE, MARK_BASE, RULE_PREF } from '../net/ids.js';
import { TABLE_BASE, MARK_BASE, RULE_PREF, MAX_UPLINK_IDS } from '../net/ids.js';
export const MAX_UPLINKS = MAX_UPLINK_IDS;

export interface Plan {
  config: NamespaceConfig;
  steps: Step[];
  // The uplink cannot carry traffic yet (up only): NAME's kill switch stays closed until it can.
  waiting?: UplinkWaiting;
}

export interface UplinkWaiting {
  dev: string;
  reason: 'down' | 'missing' | 'no-address';
}

function describeRoute(r: { dst: string; table: number; dev?: string }): string {
  const table = r.table === 254 ? 'main' : r.table === 255 ? 'local' : String(r.table);
  return `${r.dst}${r.dev ? ` dev ${r.dev}` : ''} (table ${table})`;
}

// Every block the host already uses: its addresses and the destinations of its routes in all
// tables (default routes excepted: they overlap everything by definition).
// `what` is said only for a clash: made when asked (at 1000 namespaces, some 4000 blocks).
function takenBlocks(facts: HostFacts, others: readonly NamespaceConfig[]): { block: Cidr4; what: () => string }[] {
  const out: { block: Cidr4; what: () => string }[] = [];
  for (const a of facts.addrs) if (a.family === 4) out.push({ block: blockOf(a.local, a.prefix), what: () => `the address ${a.local}/${a.prefix} on ${a.dev}` });
  for (const r of facts.routes) {
    if (r.dst === 'default') continue;
    const slash = r.dst.indexOf('/');
    const ip = slash < 0 ? r.dst : r.dst.slice(0, slash);
    if (!isIPv4(ip)) continue;
    out.push({ block: blockOf(ip, slash < 0 ? 32 : Number(r.dst.slice(slash + 1))), what: () => `the route ${describeRoute(r)}` });
  }
  for (const o of others) if (o.subnet) out.push({ block: parseStateCidr4(o.subnet), what: () => `namespace ${o.name}` });
  return out;
}

function chooseSubnet(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[]): Cidr4 {
  const taken = takenBlocks(facts, others);
  if (profile.subnet) {
    const wanted = parseCidr4(profile.subnet, '--subnet');
    const clash = taken.find((t) => cidrsOverlap(t.block, wanted));
    if (clash) {
      throw new UserError(`subnet ${profile.subnet} overlaps ${clash.what()}`, 'choose another --subnet, or leave it out to pick a free one');
    }
    return wanted;
  }
  const pools = DEFAULT_POOLS.map((p) => parseCidr4(p, 'pool'));
  const found = allocateSubnet(pools, taken.map((t) => t.block));
  if (!found) throw new UserError(`no free /30 left in ${DEFAULT_POOLS.join(', ')}`, 'pass --subnet CIDR with a free block');
  return found;
}

// Which namespace an interface belongs to: its owner tag, or a namespace's state naming it as
// its veth, or (`bridges`) as the bridge it took an interface into. undefined: not nsroute's.
// A NAT uplink may be such a bridge (the host's address moved onto it); a LAN-mode namespace
// must not sit on one, since it goes away with the namespace that made it.
function nsrouteOwner(facts: HostFacts, others: readonly NamespaceConfig[], dev: string, bridges: boolean): string | undefined {
  const tag = parseTag(facts.links.find((l) => l.name === dev)?.alias);
  if (tag) return tag.name;
  return others.find((o) => o.hostIface === dev || (bridges && o.lan?.takeover && o.lan.bridge === dev))?.name;
}

// An interface the user names as the way out (--dev, --uplink, --bridge) must be a real one
// of the host's: not loopback (nothing leaves by it), and not one nsroute made for a namespace
// (its veth leads into that namespace; its bridge goes when that namespace does): accepting
// those leaves the namespace without a route while it looks configured.
function refuseUnusableUplink(facts: HostFacts, others: readonly NamespaceConfig[], dev: string, what: string, bridges = false): void {
  const link = facts.links.find((l) => l.name === dev);
  if (dev === 'lo' || link?.loopback) {
    throw new UserError(`${what} ${dev} is the loopback interface: nothing leaves the host by it`, 'name the interface toward the gateway (`ip -4 addr` lists them)');
  }
  const owner = nsrouteOwner(facts, others, dev, bridges);
  if (owner !== undefined) {
    const takeover = others.find((o) => o.name === owner && o.lan?.bridge === dev)?.lan?.takeover;
    throw new UserError(
      `${what} ${dev} is nsroute's own interface for namespace ${owner}, not a way out of the host`,
      takeover ? `use --uplink ${takeover} (namespaces on one interface share its bridge)` : 'name the host interface toward the gateway (`ip -4 addr` lists them)',
    );
  }
}

function chooseUplinkDev(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[], wait: UplinkWait): string {
  const via = profile.via!;
  const v4 = facts.addrs.filter((a) => a.family === 4);
  // The network or broadcast address of a link the gateway would be on is no router.
  for (const a of v4) {
    const block = blockOf(a.local, a.prefix);
    const which = networkOrBroadcast(block, via);
    if (which) throw new UserError(`gateway ${via} is the ${which} of ${cidrToString(block)} on ${a.dev}`, 'pass the address of the router on that network');
  }
  if (profile.dev) {
    const link = facts.links.find((l) => l.name === profile.dev);
    if (!link && wait === 'missing-too') return profile.dev; // not there yet (a USB NIC, a VPN's tun0): waited for
    if (!link) throw new UserError(`interface ${profile.dev} does not exist`, '`ip link` lists interfaces');
    refuseUnusableUplink(facts, others, profile.dev, 'interface');
    const own = v4.filter((a) => a.dev === profile.dev);
    if (v4.some((a) => a.local === via)) {
      throw new UserError(`gateway ${via} is this host's own address`, 'pass the address of the router on that network');
    }
    // Down, or up without an address yet (DHCP still running at boot): waited for.
    if (wait && own.length === 0) return profile.dev;
    if (!own.some((a) => cidrContains(blockOf(a.local, a.prefix), via))) {
      const nets = own.map((a) => `${a.local}/${a.prefix}`).join(', ') || 'no IPv4 address';
      throw new UserError(`gateway ${via} is not on ${profile.dev}'s networks (${nets})`, 'pass a gateway on that network, or the --dev that reaches it');
    }
    return profile.dev;
  }
  if (v4.some((a) => a.local === via)) {
    throw new UserError(`gateway ${via} is this host's own address`, 'pass the address of the router on that network');
  }
  const candidates = v4.filter((a) => cidrContains(blockOf(a.local, a.prefix), via) && !facts.links.find((l) => l.name === a.dev)?.loopback && !nsrouteOwner(facts, others, a.dev, false));
  if (candidates.length === 0) {
    throw new UserError(
      `gateway ${via} is not reachable on any host link`,
      wait
        ? `pass a gateway on a directly connected network; to bring ${profile.name} up before its uplink is there, name the interface (dev = "IFACE" in the profile)`
        : 'pass a gateway on a directly connected network (`ip -4 addr` lists them)',
    );
  }
  const preferred = candidates.find((c) => c.dev === facts.routeToVia?.dev);
  return (preferred ?? candidates[0]!).dev;
}

// wait (up): an uplink that is down or without its address yet does not fail; NAME comes up
// with its kill switch closed (the uplink table holds only its unreachable route) and the
// watcher puts the route in when the uplink is usable. 'missing-too' (the unit's
// `up --require-profile`, at boot): also an interface that does not exist yet; from a shell,
// a missing interface is likelier a typo. exec, which creates NAME for one command, still
// fails at once (docs/boot.md).
export type UplinkWait = false | 'existing' | 'missing-too';

export function chooseUplink(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[], wait: UplinkWait): { uplink?: Uplink; waiting?: UplinkWaiting } {
  if (!profile.via && !profile.dev) return {};
  let dev: string;
  if (profile.via) dev = chooseUplinkDev(profile, facts, others, wait);
  else {
    // --dev alone: a point-to-point uplink such as a VPN's tun0, routed without a gateway.
    dev = profile.dev!;
    if (wait !== 'missing-too' && !facts.links.some((l) => l.name === dev)) throw new UserError(`interface ${dev} does not exist`, '`ip link` lists interfaces');
    if (facts.links.some((l) => l.name === dev)) refuseUnusableUplink(facts, others, dev, 'interface');
  }
  const link = facts.links.find((l) => l.name === dev);
  if (link && !link.up && !wait) throw new UserError(`interface ${dev} is down`, `bring it up first (ip link set ${dev} up)`);
  const noAddress = profile.via !== undefined && !facts.addrs.some((a) => a.family === 4 && a.dev === dev);
  const waiting: UplinkWaiting | undefined = !link ? { dev, reason: 'missing' } : !link.up ? { dev, reason: 'down' } : noAddress ? { dev, reason: 'no-address' } : undefined;
  const found = pickUplink(profile, facts, others, dev);
  return { uplink: found, ...(waiting ? { waiting } : {}) };
}

function pickUplink(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[], dev: string): Uplink {
  const shared = others.find((o) => o.uplink && o.uplink.dev === dev && o.uplink.via === profile.via)?.uplink;
  if (shared) return { ...shared };
  const usedTables = new Set<number>([...facts.routes.map((r) => r.table), ...facts.rules.flatMap((r) => (r.table === undefined ? [] : [r.table]))]);
  const usedMarks = new Set<number>(facts.rules.flatMap((r) => (r.fwmark === undefined ? [] : [r.fwmark])));
  for (const o of others) if (o.uplink) (usedTables.add(o.uplink.table), usedMarks.add(o.uplink.mark));
  for (let i = 1; i <= MAX_UPLINKS; i++) {
    if (!usedTables.has(TABLE_BASE + i) && !usedMarks.has(MARK_BASE + i)) {
      return { via: profile.via, dev, table: TABLE_BASE + i, mark: MARK_BASE + i, pref: RULE_PREF };
    }
  }
  throw new UserError(`no free routing table in ${TABLE_BASE + 1}-${TABLE_BASE + MAX_UPLINKS}`, 'take down namespaces that use other uplinks');
}

// The IPv6 next hop of an uplink: --via6, else the host's own IPv6 default route on that
// device. A point-to-point device (a VPN's tun0) needs none.
export function chooseVia6(profile: Profile, uplink: Uplink, facts: HostFacts): string | undefined {
  if (profile.via6) return profile.via6;
  const viaDev = (facts.routes6 ?? []).find((r) => r.table === 254 && r.dst === 'default' && r.dev === uplink.dev && r.gateway);
  if (viaDev) return viaDev.gateway;
  if (!uplink.via) return undefined; // --dev alone: routed by device
  throw new UserError(
    `${uplink.dev} has no IPv6 default route to take the namespace's IPv6 traffic`,
    `pass --via6 with the IPv6 router on ${uplink.dev}, or use --ipv6 off`,
  );
}

export const MAX_IFACE_ATTEMPTS = 16;

// The host end of NAME's link: the first of hostIfaceName's deterministic candidates that is
// free. A candidate another namespace owns (its state names it, or the interface's owner tag
// says another NAME) is skipped, never reported as "left over": deleting it would cut that
// namespace off. A candidate tagged with NAME itself is a leftover of an earlier NAME, which
// gc removes; an untagged interface is someone else's and is never touched.
export function chooseHostIface(name: string, facts: HostFacts, others: readonly NamespaceConfig[]): string {
  const stateOwner = new Map(others.filter((o) => o.name !== name).map((o) => [o.hostIface, o.name]));
  for (let attempt = 0; attempt < MAX_IFACE_ATTEMPTS; attempt++) {
    const candidate = hostIfaceName(name, attempt);
    if (stateOwner.has(candidate)) continue;
    const link = facts.links.find((l) => l.name === candidate);
    if (!link) return candidate;
    const tag = parseTag(link.alias);
    if (tag && tag.name !== name) continue;
    if (tag) {
      throw new UserError(`interface ${candidate} is left over from an earlier ${name} (its owner tag says so)`, '`nsroute gc` removes what nsroute left behind');
    }
    throw new UserError(
      `interface ${candidate}, the name nsroute gives ${name}'s link, already exists and is not nsroute's`,
      'nsroute leaves it alone; pick another NAME',
    );
  }
  throw new UserError(`no free interface name for ${name} (${MAX_IFACE_ATTEMPTS} candidates taken)`, 'pick another NAME');
}

function hostDefaultGateway(facts: HostFacts): string | undefined {
  return facts.routes.find((r) => r.table === 254 && r.dst === 'default' && r.gateway)?.gateway;
}

// Pure: validated profile + host facts + the other nsroute namespaces -> config and steps.
// Throws UserError for anything the user can fix; nothing has been changed at that point.
export function buildPlan(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[], opts: { persistent?: boolean; waitForUplink?: UplinkWait } = {}): Plan {
  const { name } = profile;
  // A host mode: no namespace, no link (plan/cgroup.ts).
  if (profile.mode === 'cgroup') return buildCgroupPlan(profile, facts, others);
  const hostIface = chooseHostIface(name, facts, others);
  if (profile.mode === 'bridge' || profile.mode === 'macvlan') return buildLanPlan(profile, facts, others, opts.persistent ?? false, hostIface);
  const { uplink, waiting } = chooseUplink(profile, facts, others, opts.waitForUplink ?? false);
  const subnet = chooseSubnet(profile, facts, others);
  const { host, ns } = linkAddresses(subnet);
  const dns = chooseDnsServers({
    explicit: profile.dns,
    hostResolvConf: facts.hostResolvConf,
    resolvedConf: facts.resolvedConf,
    gateway: uplink ? (uplink.via ?? undefined) : hostDefaultGateway(facts),
  });
  const config: NamespaceConfig = {
    name,
    mode: 'nat',
    hostIface,
    nsIface: NS_IFACE,
    subnet: cidrToString(subnet),
    hostAddress: host,
    nsAddress: ns,
    prefix: subnet.prefix,
    uplink,
    dns: dns.servers,
    dnsSource: dns.source,
  };
  if (profile.ipv6 === 'nat') {
    const v6 = ula64For(subnet);
    Object.assign(config, { ipv6: 'nat', subnet6: v6.subnet6, hostAddress6: v6.host6, nsAddress6: v6.ns6 });
    const via6 = uplink ? chooseVia6(profile, uplink, facts) : undefined;
    if (via6) config.via6 = via6;
  }
  withInbound(config, profile, facts, others);
  return { config, steps: stepsFor(config, { persistent: opts.persistent ?? false, nsswitch: facts.hostNsswitch }), ...(waiting ? { waiting } : {}) };
}

// The interface a LAN-mode namespace sits on must exist, be up, and (for a bridge) be
// bridgeable: a wireless client interface cannot be a bridge port (the access point accepts
// only its own MAC address from it).
function requireUsableLink(facts: HostFacts, others: readonly NamespaceConfig[], dev: string, what: string): void {
  const link = facts.links.find((l) => l.name === dev);
  if (!link) throw new UserError(`${what} ${dev} does not exist`, '`ip link` lists interfaces');
  refuseUnusableUplink(facts, others, dev, what, true);
  if (!link.up) throw new UserError(`${what} ${dev} is down`, `bring it up first (ip link set ${dev} up)`);
}

function refuseEnslaved(facts: HostFacts, dev: string, master: string): never {
  const isBridge = facts.links.find((l) => l.name === master)?.kind === 'bridge';
  throw new UserError(
    `${dev} is a port of ${isBridge ? 'bridge' : ''} ${master}`.replace('  ', ' '),
    isBridge ? `join that bridge with --mode bridge --bridge ${master} (or a macvlan on it: --uplink ${master})` : `use ${master} instead`,
  );
}

function buildLanPlan(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[], persistent: boolean, hostIface: string): Plan {
  const { name } = profile;
  const mode = profile.mode as 'bridge' | 'macvlan';
  const lan: LanConfig = {};
  if (mode === 'bridge' && profile.bridge) {
    const br = facts.links.find((l) => l.name === profile.bridge);
    if (!br) throw new UserError(`bridge ${profile.bridge} does not exist`, '`ip -d link show type bridge` lists bridges; or use --uplink IFACE and nsroute makes one');
    if (br.kind !== 'bridge') throw new UserError(`${profile.bridge} is not a bridge`, 'give a bridge, or --uplink IFACE to have nsroute make one');
    requireUsableLink(facts, others, profile.bridge, 'bridge');
    lan.bridge = profile.bridge;
  } else if (mode === 'bridge') {
    const dev = profile.uplink!;
    requireUsableLink(facts, others, dev, 'interface');
    if (facts.wireless?.includes(dev)) {
      throw new UserError(`${dev} is a wireless interface, which cannot be bridged (the access point accepts only its own MAC address)`, 'use --mode macvlan, or --mode nat');
    }
    const link = facts.links.find((l) => l.name === dev)!;
    if (link.kind === 'bridge') throw new UserError(`${dev} is a bridge already`, `use --bridge ${dev}`);
    const shared = others.find((o) => o.lan?.takeover === dev);
    // Taking a port out of someone's bridge (or bond) would cut that bridge's LAN.
    if (link.master && link.master !== shared?.lan?.bridge) refuseEnslaved(facts, dev, link.master);
    lan.bridge = shared?.lan?.bridge ?? bridgeNameFor(dev);
    if (!shared && facts.links.some((l) => l.name === lan.bridge)) {
      // Checked here, not by the kernel's "File exists" half-way through the takeover.
      throw new UserError(
        `bridge ${lan.bridge}, the one nsroute makes for ${dev}, already exists and no namespace uses it`,
        `if nsroute left it behind, \`nsroute gc\` gives ${dev} back; if it is yours, join it with --bridge ${lan.bridge}`,
      );
    }
    lan.takeover = dev;
  } else {
    const dev = profile.uplink!;
    requireUsableLink(facts, others, dev, 'interface');
    // The kernel refuses a macvlan on a bridge or bond port ("Device or resource busy").
    const master = facts.links.find((l) => l.name === dev)!.master;
    if (master) refuseEnslaved(facts, dev, master);
    lan.parent = dev;
  }
  if (profile.dhcp) lan.dhcp = true;
  else {
    const [ip, p] = profile.address!.split('/');
    const clash = facts.addrs.find((a) => a.family === 4 && a.local === ip);
    if (clash) throw new UserError(`${ip} is the host's own address (on ${clash.dev})`, 'give the namespace an address of its own on that LAN');
    const taken = others.find((o) => o.lan?.address?.split('/')[0] === ip);
    if (taken) throw new UserError(`${ip} is already namespace ${taken.name}'s address`, 'give this namespace another address');
    lan.address = `${ip}/${p}`;
    lan.gateway = profile.via;
  }
  const dns = profile.dhcp
    ? profile.dns.length > 0
      ? { servers: profile.dns, source: 'option' as const }
      : { servers: [] as string[], source: 'dhcp' as const }
    : chooseDnsServers({ explicit: profile.dns, hostResolvConf: facts.hostResolvConf, resolvedConf: facts.resolvedConf, gateway: lan.gateway });
  const block = lan.address ? blockOf(lan.address.split('/')[0]!, Number(lan.address.split('/')[1])) : undefined;
  const config: NamespaceConfig = {
    name,
    mode,
    lan,
    hostIface,
    nsIface: NS_IFACE,
    subnet: block ? cidrToString(block) : '',
    hostAddress: '',
    nsAddress: lan.address ? lan.address.split('/')[0]! : '',
    prefix: block?.prefix ?? 0,
    dns: dns.servers,
    dnsSource: dns.source,
  };
  withInbound(config, profile, facts, others);
  return { config, steps: lanStepsFor(config, { persistent, nsswitch: facts.hostNsswitch }) };
}

// Published ports and caps (plan/inbound.ts) into the config, checked against the host.
function withInbound(config: NamespaceConfig, profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[]): void {
  if (profile.publish && profile.publish.length > 0) config.publish = profile.publish;
  if (profile.rateDown) config.rateDown = profile.rateDown;
  if (profile.rateUp) config.rateUp = profile.rateUp;
  checkInbound(config, facts, others);
}

// Name of the bridge nsroute makes for --uplink IFACE (<= 15 characters, like every ifname).
export function bridgeNameFor(iface: string): string {
  return hostIfaceName(iface).replace(/^nsr/, 'nsb');
}

export function lanStepsFor(config: NamespaceConfig, opts: { persistent: boolean; nsswitch?: string }): Step[] {
  const { name, hostIface, nsIface } = config;
  const lan = config.lan!;
  const tag = tagOf(config, opts.persistent);
  return [
    { kind: 'netns-add', name },
    ...(lan.takeover ? [{ kind: 'bridge-takeover', iface: lan.takeover, bridge: lan.bridge! } as const] : []),
    config.mode === 'macvlan'
      ? ({ kind: 'macvlan-add', netns: name, parent: lan.parent!, tmpIface: hostIface, nsIface } as const)
      : ({ kind: 'veth-bridge', netns: name, hostIface, nsIface, bridge: lan.bridge!, tag } as const),
    { kind: 'ns-config-lan', netns: name, nsIface, ...(lan.address ? { address: lan.address, gateway: lan.gateway! } : {}) },
    { kind: 'netns-files', netns: name, files: netnsFiles(config, opts.nsswitch) },
    ...(lan.dhcp ? [{ kind: 'dhcp-client', netns: name, nsIface, writeDns: config.dnsSource === 'dhcp' } as const] : []),
    ...inboundSteps(config),
  ];
}

export function vethBridgeLines(step: Extract<Step, { kind: 'veth-bridge' }>): string[] {
  return [
    `link add name ${step.hostIface} type veth peer name ${step.nsIface} netns ${step.netns}`,
    `link set dev ${step.hostIface} addrgenmode none`,
    `link set dev ${step.hostIface} alias ${step.tag}`,
    `link set dev ${step.hostIface} master ${step.bridge}`,
    `link set dev ${step.hostIface} up`,
  ];
}

export function nsConfigLanLines(step: Extract<Step, { kind: 'ns-config-lan' }>): string[] {
  return [
    'link set dev lo up',
    `link set dev ${step.nsIface} addrgenmode none`,
    `link set dev ${step.nsIface} up`,
    ...(step.address ? [`address add ${step.address} dev ${step.nsIface}`, `route add default via ${step.gateway} dev ${step.nsIface}`] : []),
  ];
}

// The owner tag of the namespace's host veth (net/tag.ts): what gc needs to rebuild the config.
export function tagOf(config: NamespaceConfig, persistent: boolean): string {
  const nat6 = config.ipv6 === 'nat';
  return renderTag({ name: config.name, persistent, uplink: config.uplink, ...(nat6 ? { ipv6: 'nat' as const } : {}), ...(nat6 && config.via6 ? { via6: config.via6 } : {}) });
}

// The steps that create a namespace with this config, in order. Deterministic, so gc can
// rebuild the journal of a namespace whose run dir was lost from its recovered config.
export function stepsFor(config: NamespaceConfig, opts: { persistent: boolean; nsswitch?: string }): Step[] {
  if (config.mode !== 'nat') return lanStepsFor(config, opts);
  const { name, hostIface, nsIface, hostAddress, nsAddress, prefix, uplink } = config;
  const v6 = config.ipv6 === 'nat' && config.subnet6 ? { hostCidr6: `${config.hostAddress6}/64`, subnet6: config.subnet6 } : undefined;
  return [
    { kind: 'netns-add', name },
    // Before the block is routable at all: from the first packet, traffic that misses
    // nsroute's mark has no route (plan/guard.ts).
    { kind: 'route-guard' },
    {
      kind: 'veth-add',
      netns: name,
      hostIface,
      nsIface,
      hostCidr: `${hostAddress}/${prefix}`,
      tag: tagOf(config, opts.persistent),
      ...(uplink ? { uplinkTable: uplink.table, subnet: config.subnet } : {}),
      ...(v6 ?? {}),
    },
    { kind: 'ns-config', netns: name, nsIface, nsCidr: `${nsAddress}/${prefix}`, gateway: hostAddress, ...(v6 ? { nsCidr6: `${config.nsAddress6}/64` } : {}) },
    { kind: 'netns-files', netns: name, files: netnsFiles(config, opts.nsswitch) },
    { kind: 'ip-forward' },
    ...(v6 ? [{ kind: 'ip6-forward' } as const] : []),
    ...(uplink ? [{ kind: 'uplink-route', uplink } as const] : []),
    ...(uplink && v6 ? [{ kind: 'uplink-route6', uplink, ...(config.via6 ? { via6: config.via6 } : {}) } as const] : []),
    { kind: 'fw-holes' },
    { kind: 'nft-member', iface: hostIface, subnet: config.subnet, ...(v6 ? { subnet6: v6.subnet6 } : {}), ...(uplink ? { mark: uplink.mark } : {}) },
    ...inboundSteps(config),
  ];
}

// The files bind-mounted over /etc inside the namespace (by `ip netns exec`).
function netnsFiles(config: NamespaceConfig, hostNsswitch: string | undefined): Record<string, string> {
  return {
    'resolv.conf': renderResolvConf(config.name, config.dns),
    'gai.conf': renderGaiConf(config.name),
    'nsswitch.conf': renderNsswitchConf(config.name, hostNsswitch),
  };
}

// The iproute2 lines of the steps that need no host knowledge to render (unit-tested).
export function vethLines(step: Extract<Step, { kind: 'veth-add' }>): string[] {
  return [
    `link add name ${step.hostIface} type veth peer name ${step.nsIface} netns ${step.netns}`,
    // No IPv6 link-local on either end: the namespace has no IPv6 path unless configured.
    `link set dev ${step.hostIface} addrgenmode none`,
    // The owner tag: the interface says which namespace it serves (src/net/tag.ts).
    `link set dev ${step.hostIface} alias ${step.tag}`,
    `address add ${step.hostCidr} dev ${step.hostIface}`,
    ...(step.hostCidr6 ? [`address add ${LINK_LOCAL_HOST}/64 dev ${step.hostIface} nodad`, `address add ${step.hostCidr6} dev ${step.hostIface} nodad`] : []),
    `link set dev ${step.hostIface} up`,
    ...vethRouteLines(step),
  ];
}

// The namespace's own routes in its uplink's table (replayed by repairs: a flushed table loses them).
export function vethRouteLines(step: Extract<Step, { kind: 'veth-add' }>): string[] {
  if (step.uplinkTable === undefined) return [];
  return [
    ...(step.subnet ? [`route replace ${step.subnet} dev ${step.hostIface} table ${step.uplinkTable}`] : []),
    ...(step.subnet6 ? [`route replace ${step.subnet6} dev ${step.hostIface} table ${step.uplinkTable}`] : []),
  ];
}

export function nsConfigLines(step: Extract<Step, { kind: 'ns-config' }>): string[] {
  return [
    'link set dev lo up',
    `link set dev ${step.nsIface} addrgenmode none`,
    `address add ${step.nsCidr} dev ${step.nsIface}`,
    ...(step.nsCidr6 ? [`address add ${LINK_LOCAL_NS}/64 dev ${step.nsIface} nodad`, `address add ${step.nsCidr6} dev ${step.nsIface} nodad`] : []),
    `link set dev ${step.nsIface} up`,
    `route add default via ${step.gateway} dev ${step.nsIface}`,
    ...(step.nsCidr6 ? [`route add default via ${LINK_LOCAL_HOST} dev ${step.nsIface}`] : []),
  ];
}

// The uplink table: the gateway route plus an unreachable fallback, so a marked packet
// never falls through to the main table when the uplink's route is gone (no silent leak).
export function uplinkRouteLines(u: Uplink): string[] {
  return [
    u.via ? `route replace default via ${u.via} dev ${u.dev} table ${u.table}` : `route replace default dev ${u.dev} table ${u.table}`,
    `route replace unreachable default metric 4278190080 table ${u.table}`,
  ];
}

// The same for IPv6 (--ipv6 nat); the table number and mark are shared with IPv4 (the
// kernel keeps IPv4 and IPv6 tables and rules apart).
export function uplinkRoute6Lines(u: Uplink, via6: string | undefined): string[] {
  return [
    via6 ? `route replace default via ${via6} dev ${u.dev} table ${u.table}` : `route replace default dev ${u.dev} table ${u.table}`,
    `route replace unreachable default metric 4278190080 table ${u.table}`,
  ];
}

export function uplinkRuleArgs(u: Uplink): string[] {
  return ['fwmark', hex(u.mark), 'lookup', String(u.table), 'pref', String(u.pref)];
}

// The config of a host mode's NAME (cgroup, replies): no namespace, so no link, subnet or
// addresses of its own.
export function hostModeConfig(
  name: string,
  mode: 'cgroup' | 'replies',
  rest: Pick<NamespaceConfig, 'uplink' | 'dns' | 'dnsSource'> & Partial<NamespaceConfig>,
): NamespaceConfig {
  return { name, mode, hostIface: '', nsIface: '', subnet: '', hostAddress: '', nsAddress: '', prefix: 0, ...rest };
}
