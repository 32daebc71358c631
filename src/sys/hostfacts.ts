import { parseAddrs, parseLinks, parseRouteGet, parseRoutes, parseRules } from '../net/iproute-json.js';
import type { HostFacts } from '../plan/types.js';
import { ipJson, routeGet } from './ip.js';
import { wirelessInterfaces } from './lan.js';
import { listDir, readTextIfExists } from './fsx.js';
import { NETNS_RUN_DIR, hostNsswitchPath, hostResolvConfPath, resolvedConfPath } from '../state/paths.js';

// Everything the planner needs, read in parallel before any change.
export async function gatherHostFacts(via?: string, opts: { ipv6?: boolean } = {}): Promise<HostFacts> {
  const [links, addrs, routes, rules, viaRoute, routes6] = await Promise.all([
    ipJson(['-d', 'link', 'show']),
    ipJson(['address', 'show']),
    ipJson(['-4', '-N', 'route', 'show', 'table', 'all']),
    ipJson(['-4', '-N', 'rule', 'show']),
    via ? routeGet(via) : Promise.resolve([]),
    opts.ipv6 ? ipJson(['-6', 'route', 'show', 'default']) : Promise.resolve([]),
  ]);
  return {
    links: parseLinks(links),
    addrs: parseAddrs(addrs),
    routes: parseRoutes(routes),
    rules: parseRules(rules),
    netns: listDir(NETNS_RUN_DIR),
    routeToVia: via ? parseRouteGet(viaRoute) : undefined,
    hostResolvConf: readTextIfExists(hostResolvConfPath()),
    resolvedConf: readTextIfExists(resolvedConfPath()),
    hostNsswitch: readTextIfExists(hostNsswitchPath()),
    wireless: wirelessInterfaces(),
    routes6: parseRoutes(routes6),
  };
}
