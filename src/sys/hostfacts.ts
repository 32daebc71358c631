import { parseAddrs, parseLinks, parseRouteGet, parseRoutes, parseRules } from '../net/iproute-json.js';
import type { HostFacts } from '../plan/types.js';
import { ipJson, ipJsonBatch } from './ip.js';
import { nftForwardFacts } from './nft.js';
import { wirelessInterfaces } from './lan.js';
import { listDir, readTextIfExists } from './fsx.js';
import { NETNS_RUN_DIR, hostNsswitchPath, hostResolvConfPath, paths, resolvedConfPath } from '../state/paths.js';
import { hostLockGeneration } from '../state/lockinfo.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

// Everything the planner needs, read before any change: the IPv4 links, addresses, routes of
// all tables and rules (numeric: named tables cannot hide an id from the allocator), plus the
// route to VIA, in two `ip -j -batch` run side by side (the links need -d, for their kind; the
// addresses and routes, the bulk of it with many namespaces, do not, and print half as much
// without it), and in parallel what the firewall-holes step looks at in the nft ruleset
// (sys/nft.ts nftForwardFacts) and, with IPv6, the IPv6 default routes.
export async function gatherHostFacts(via?: string, opts: { ipv6?: boolean } = {}): Promise<HostFacts> {
  const [detailed, plain, routes6, nftRuleset] = await Promise.all([
    ipJsonBatch(['link show', 'rule show', ...(via ? [`route get ${via}`] : [])], ['-4', '-d', '-N']),
    ipJsonBatch(['address show', 'route show table all'], ['-4', '-N']),
    opts.ipv6 ? ipJson(['-6', 'route', 'show', 'default']) : Promise.resolve([]),
    nftForwardFacts(),
  ]);
  const [links, rules, viaRoute] = detailed;
  const [addrs, routes] = plain;
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

// The host facts of a NAME that looks new (nothing of it: no state dir, no namespace), read
// before the host lock is taken, with the lock's generation at the start of the read
// (state/lock.ts): bringUp uses them under the lock only if no other take of the lock
// happened since, so that nothing nsroute does changed the host in between and the lock is
// held for the changes alone. exec starts this read first thing, so that the tools run while
// the code that creates NAME loads (issue 11).
export interface EarlyFacts {
  gen: number;
  facts: Promise<HostFacts | undefined>;
}

export function readHostFactsEarly(name: string, via: string | undefined, ipv6: boolean): EarlyFacts | undefined {
  if (existsSync(paths.nsDir(name)) || existsSync(join(NETNS_RUN_DIR, name))) return undefined;
  const gen = hostLockGeneration();
  if (gen === undefined) return undefined;
  return { gen, facts: gatherHostFacts(via, { ipv6 }).catch(() => undefined) };
}
