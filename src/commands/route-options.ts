// The route options shared by exec, shell and up, as commander options. Apart from
// options.ts (which loads and checks profiles, and with them smol-toml and ip-cidr), so that
// defining the command line costs nothing more than commander itself: cli.ts imports this
// at start-up, the rest only when a verb that needs it runs.
import type { Command } from 'commander';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function addRouteOptions(cmd: Command): Command {
  return cmd
    .option('--via <gateway>', 'next hop for the namespace traffic (policy-routed on the host)')
    .option('--dev <iface>', 'host interface toward the gateway (default: the one that reaches it)')
    .option('--dns <ip>', 'name server for the namespace (repeatable)', collect)
    .option('--subnet <cidr>', 'address block for the veth link (default: a free /30)')
    .option('--ipv6 <mode>', 'off (default): no IPv6 path out; nat: IPv6 leaves by the same uplink, masqueraded')
    .option('--via6 <gateway6>', "IPv6 next hop with --ipv6 nat (default: the uplink's IPv6 default route)")
    .option('--mode <mode>', 'nat (default), bridge (own address on the LAN via a bridge), macvlan (own address via a macvlan), cgroup (no namespace: routed by cgroup, keeps localhost), replies (no namespace: the host answers connections arriving on --dev via --via)')
    .option('--bridge <bridge>', 'bridge mode: join this existing bridge')
    .option('--uplink <iface>', 'bridge mode: take this interface into a new bridge; macvlan mode: the parent interface')
    .option('--address <cidr>', "bridge/macvlan: the namespace's own address on the LAN (with --via, the LAN's router)")
    .option('--dhcp', 'bridge/macvlan: get address, router and DNS from the LAN by DHCP')
    .option('--publish <[hostaddr:]hostport:port[/proto]>', 'nat: a connection to HOSTPORT on the host reaches PORT inside (repeatable)', collect)
    .option('--rate-down <rate>', 'cap what the namespace receives (tc rate, e.g. 20mbit)')
    .option('--rate-up <rate>', 'cap what the namespace sends (tc rate, e.g. 5mbit)');
}

