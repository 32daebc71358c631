import { blockOf, cidrToString, linkAddresses, ula64For } from '../net/addresses.js';
import type { AddrFact } from '../net/iproute-json.js';
import { NS_IFACE } from '../net/names.js';
import type { Tag } from '../net/tag.js';
import { parseNameservers } from '../net/resolv.js';
import type { NamespaceConfig } from './types.js';

// Rebuilds a namespace's config from what the kernel and /etc/netns still show when its
// state file is gone (run dir removed by hand): the owner tag on the host end of its veth
// (name, lifetime, uplink), the address on that end (subnet and both link addresses) and the
// name servers in the resolv.conf nsroute wrote. undefined when the evidence is incomplete.
export function recoverConfig(tag: Tag, hostIface: string, addrs: readonly AddrFact[], resolvConf: string | undefined): NamespaceConfig | undefined {
  const own = addrs.filter((a) => a.dev === hostIface && a.family === 4);
  if (own.length !== 1) return undefined;
  const a = own[0]!;
  const subnet = blockOf(a.local, a.prefix);
  let ends: { host: string; ns: string };
  try {
    ends = linkAddresses(subnet);
  } catch {
    return undefined;
  }
  if (ends.host !== a.local) return undefined;
  const dns = parseNameservers(resolvConf ?? '');
  const v6 = tag.ipv6 === 'nat' ? ula64For(subnet) : undefined;
  return {
    ...(v6 ? { ipv6: 'nat' as const, subnet6: v6.subnet6, hostAddress6: v6.host6, nsAddress6: v6.ns6, ...(tag.via6 ? { via6: tag.via6 } : {}) } : {}),
    name: tag.name,
    mode: 'nat',
    hostIface,
    nsIface: NS_IFACE,
    subnet: cidrToString(subnet),
    hostAddress: ends.host,
    nsAddress: ends.ns,
    prefix: subnet.prefix,
    uplink: tag.uplink,
    dns,
    dnsSource: 'recovered',
  };
}
