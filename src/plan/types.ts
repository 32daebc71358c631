import type { AddrFact, LinkFact, RouteFact, RuleFact } from '../net/iproute-json.js';
import type { PublishedPort } from '../net/publish.js';
import type { Listener } from '../net/listeners.js';

// What the planner knows about the host: read once, before any change.
export interface HostFacts {
  links: LinkFact[];
  addrs: AddrFact[];
  routes: RouteFact[]; // IPv4, all tables, numeric table ids
  rules: RuleFact[]; // IPv4
  rulesJson?: unknown; // the same, as `ip -j rule show` printed it (the fail-closed rules are read from it)
  nftRuleset?: unknown; // `nft -j list ruleset`, or only its chains when they say all (sys/nft.ts nftForwardFacts); undefined: not read, or nft failed
  routes6?: RouteFact[]; // IPv6, main table (for the uplink's IPv6 gateway)
  netns: string[]; // names under /run/netns
  routeToVia?: { dev?: string; gateway?: string }; // `ip route get VIA`, when --via is given
  hostResolvConf?: string;
  resolvedConf?: string;
  hostNsswitch?: string; // /etc/nsswitch.conf
  wireless?: string[]; // interfaces with /sys/class/net/X/wireless (cannot be bridged)
  // cgroup mode only (apply/hostmode.ts): the cgroup v2 mount (undefined: none), the parent
  // of NAMEs' cgroups, and whether systemd is PID 1.
  cgroupHost?: { mount?: string; parent: string; systemd: boolean };
  listeners?: Listener[]; // the host's listening sockets (`ss`), read only for --publish
}

// The uplink a namespace's traffic is policy-routed through; shared by every namespace
// with the same gateway and device (one routing table and one ip rule per uplink).
export interface Uplink {
  via?: string;
  dev: string;
  table: number;
  mark: number;
  pref: number;
}

// cgroup mode: where NAME's cgroup is, relative to the cgroup v2 mount (sys/cgroup.ts), and
// its depth there (nft's `socket cgroupv2 level N`).
export interface CgroupConfig {
  path: string;
  level: number;
}

// Everything decided for one namespace; stored in its state file.
// bridge / macvlan modes: the namespace as its own host on a LAN.
export interface LanConfig {
  bridge?: string; // bridge mode: the bridge the veth joins
  takeover?: string; // bridge mode with --uplink: the interface nsroute took into `bridge`
  parent?: string; // macvlan mode
  address?: string; // static CIDR; absent with dhcp
  gateway?: string;
  dhcp?: boolean;
}

export interface NamespaceConfig {
  name: string;
  // Host modes, no namespace: 'replies' (plan/replies.ts): uplink says where replies go;
  // 'cgroup' (plan/cgroup.ts): NAME's cgroup's sockets are routed by mark.
  mode: 'nat' | 'bridge' | 'macvlan' | 'replies' | 'cgroup';
  lan?: LanConfig;
  // cgroup mode (host mode, no namespace; plan/cgroup.ts): NAME's cgroup v2 directory.
  cgroup?: CgroupConfig;
  hostIface: string;
  nsIface: string;
  subnet: string;
  hostAddress: string;
  nsAddress: string;
  prefix: number;
  uplink?: Uplink;
  dns: string[];
  // IPv6 (--ipv6 nat): a ULA /64 on the link and the uplink's IPv6 gateway. Absent: off.
  ipv6?: 'off' | 'nat';
  subnet6?: string;
  hostAddress6?: string;
  nsAddress6?: string;
  via6?: string;
  // 'recovered': rebuilt by gc from the kernel and /etc/netns after the run dir was lost.
  dnsSource: 'option' | 'host' | 'systemd-resolved' | 'gateway' | 'recovered' | 'dhcp';
  // Inbound and shaping (plan/inbound.ts): published ports (nat mode), bandwidth caps ("Nbit").
  publish?: PublishedPort[];
  rateDown?: string;
  rateUp?: string;
}

// A change to the machine, as plain data. Applied in order, undone in reverse; every undo
// succeeds when the object is already gone. Objects inside the namespace need no undo:
// they die with it.
export type Step =
  | { kind: 'netns-add'; name: string }
  | {
      kind: 'veth-add';
      netns: string;
      hostIface: string;
      nsIface: string;
      hostCidr: string;
      tag: string;
      // With an uplink: the namespace's blocks are also routed in the uplink's table, for
      // replies that carry the uplink mark (strict rp_filter, see net/nft.ts).
      uplinkTable?: number;
      subnet?: string;
      hostCidr6?: string; // --ipv6 nat
      subnet6?: string;
    }
  | { kind: 'ns-config'; netns: string; nsIface: string; nsCidr: string; gateway: string; nsCidr6?: string }
  | { kind: 'netns-files'; netns: string; files: Record<string, string> }
  | { kind: 'ip-forward' }
  | { kind: 'ip6-forward' }
  | { kind: 'uplink-route'; uplink: Uplink }
  | { kind: 'uplink-route6'; uplink: Uplink; via6?: string }
  | { kind: 'fw-holes' }
  // Written by earlier versions (the whole table re-rendered at every change): still undone.
  | { kind: 'nft-sync' }
  // This namespace's elements in nsroute's nft table (net/nft.ts renderNftAdd); mark absent:
  // the host mark (no --via).
  | { kind: 'nft-member'; iface: string; subnet: string; subnet6?: string; mark?: number }
  // The fail-closed policy rules (plan/guard.ts), rendered from every nat namespace at once.
  | { kind: 'route-guard' }
  // bridge / macvlan modes
  | { kind: 'bridge-takeover'; iface: string; bridge: string }
  | { kind: 'veth-bridge'; netns: string; hostIface: string; nsIface: string; bridge: string; tag: string }
  | { kind: 'macvlan-add'; netns: string; parent: string; tmpIface: string; nsIface: string }
  | { kind: 'ns-config-lan'; netns: string; nsIface: string; address?: string; gateway?: string }
  | { kind: 'dhcp-client'; netns: string; nsIface: string; writeDns: boolean }
  // --mode replies (plan/replies.ts): connections arriving on dev to the host itself get the
  // uplink's mark as their ct mark; their replies carry it (nsroute's nft table, replies_* objects).
  | { kind: 'replies-mark'; dev: string; mark: number }
  // cgroup mode (apply/cgroup-steps.ts): NAME's cgroup directory, and its elements in
  // nsroute's cgroup table (net/cgnft.ts).
  | { kind: 'cgroup-dir'; path: string }
  // route_localnet=1 on the uplink: members' DNS to a loopback stub, DNATed to NAME's server,
  // keeps its 127.0.0.1 source until masqueraded (net/cgnft.ts)
  | { kind: 'cgroup-localnet'; dev: string }
  | { kind: 'cgroup-nft'; path: string; level: number; mark?: number; dns?: string; ipv6: 'off' | 'nat' }
  // Published ports (plan/inbound.ts, net/publish.ts): NAME's elements of the publish_* maps of
  // nsroute's nft table, and route_localnet on its host veth (for 127.0.0.1 clients).
  | { kind: 'publish'; iface: string; nsAddress: string; ports: PublishedPort[]; uplink?: { dev: string; mark: number } }
  // Bandwidth caps (net/rate.ts): tbf on the host veth's egress (down) and the namespace end's (up).
  | { kind: 'rate'; netns: string; hostIface: string; nsIface: string; down?: string; up?: string };

export type StepKind = Step['kind'];
