import { parseAddrs, parseLinks, parseRouteGet, parseRoutes, parseRules } from '../net/iproute-json.js';
import type { HostFacts } from '../plan/types.js';
import { ipJson, ipJsonBatch } from './ip.js';
import { nftRulesetJson } from './nft.js';
import { wirelessInterfaces } from './lan.js';
import { listDir, readTextIfExists } from './fsx.js';
import { NETNS_RUN_DIR, hostNsswitchPath, hostResolvConfPath, resolvedConfPath } from '../state/paths.js';

// Everything the planner needs, read before any change: the IPv4 links, addresses, routes of
// all tables and rules (numeric: named tables cannot hide an id from the allocator), plus the
// route to VIA, in one `ip -j -batch` (one spawn, not five), and in parallel the nft ruleset
// (what the firewall-holes step looks at) and, with IPv6, the IPv6 default routes.
export async function gatherHostFacts(via?: string, opts: { ipv6?: boolean } = {}): Promise<HostFacts> {
  const lines = ['link show', 'address show', 'route show table all', 'rule show', ...(via ? [`route get ${via}`] : [])];
  const [answers, routes6, nftRuleset] = await Promise.all([
    ipJsonBatch(lines, ['-4', '-d', '-N']),
    opts.ipv6 ? ipJson(['-6', 'route', 'show', 'default']) : Promise.resolve([]),
    nftRulesetJson(),
  ]);
  const [links, addrs, routes, rules, viaRoute] = answers;
  // Only the route lookup may fail (no route to VIA): the rest is the host as it is.
  if (!links || !addrs || !routes || !rules) throw new Error('ip -j -batch: reading the host failed');
  return {
    links: parseLinks(links),
    addrs: parseAddrs(addrs),
    routes: parseRoutes(routes),
    rules: parseRules(rules),
    rulesJson: rules,
    netns: listDir(NETNS_RUN_DIR),
    routeToVia: via ? parseRouteGet(viaRoute ?? []) : undefined,
    hostResolvConf: readTextIfExists(hostResolvConfPath()),
    resolvedConf: readTextIfExists(resolvedConfPath()),
    hostNsswitch: readTextIfExists(hostNsswitchPath()),
    wireless: wirelessInterfaces(),
    routes6: parseRoutes(routes6),
    nftRuleset,
  };
}
