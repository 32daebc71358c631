import type { AddrFact, LinkFact, RouteFact, RuleFact } from '../net/iproute-json.js';

// What the planner knows about the host: read once, before any change.
export interface HostFacts {
  links: LinkFact[];
  addrs: AddrFact[];
  routes: RouteFact[]; // IPv4, all tables, numeric table ids
  rules: RuleFact[]; // IPv4
  netns: string[]; // names under /run/netns
  routeToVia?: { dev?: string; gateway?: string }; // `ip route get VIA`, when --via is given
  hostResolvConf?: string;
  resolvedConf?: string;
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

// Everything decided for one namespace; stored in its state file.
export interface NamespaceConfig {
  name: string;
  mode: 'nat';
  hostIface: string;
  nsIface: string;
  subnet: string;
  hostAddress: string;
  nsAddress: string;
  prefix: number;
  uplink?: Uplink;
  dns: string[];
  // 'recovered': rebuilt by gc from the kernel and /etc/netns after the run dir was lost.
  dnsSource: 'option' | 'host' | 'systemd-resolved' | 'gateway' | 'recovered';
}

// A change to the machine, as plain data. Applied in order, undone in reverse; every undo
// succeeds when the object is already gone. Objects inside the namespace need no undo:
// they die with it.
export type Step =
  | { kind: 'netns-add'; name: string }
  | { kind: 'veth-add'; netns: string; hostIface: string; nsIface: string; hostCidr: string; tag: string }
  | { kind: 'ns-config'; netns: string; nsIface: string; nsCidr: string; gateway: string }
  | { kind: 'netns-files'; netns: string; files: Record<string, string> }
  | { kind: 'ip-forward' }
  | { kind: 'uplink-route'; uplink: Uplink }
  | { kind: 'nft-sync' };

export type StepKind = Step['kind'];
