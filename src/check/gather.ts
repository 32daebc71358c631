import { forwardHolesMissing } from '../sys/iptables.js';
// Reads what `nsroute check` judges (check/evaluate.ts), all at once: route lookups inside the
// namespace and on the host, the uplink table and rules, nsroute's nft table, the files in
// /etc/netns/NAME and the namespace's view of /etc (through `ip netns exec`, which applies
// the same bind mounts a command run by nsroute gets), and a real DNS query per server.
// Changes nothing.
import { join } from 'node:path';
import type { NamespaceConfig } from '../plan/types.js';
import { netnsEtcDir } from '../state/paths.js';
import { readRegularFile } from '../sys/fsx.js';
import { HOST_MARK } from '../net/nft.js';
import { run } from '../sys/run.js';
import { PUBLISH_PROBE_SCRIPT, probeTarget, tcpPublished } from './publish.js';
import { DNS_PROBE_SCRIPT, NETNS_FILES, PROBE_DST4, PROBE_DST6, type CheckFacts, type CommandOutput, type FileView, type NetnsFile } from './evaluate.js';

async function output(argv: readonly string[], input?: string): Promise<CommandOutput> {
  try {
    return await run(argv, { allowFail: true, ...(input !== undefined ? { input } : {}) });
  } catch (e) {
    return { exitCode: -1, stdout: '', stderr: (e as Error).message };
  }
}

// run() drops a final newline, which would hide a difference of exactly that. cat prints
// this marker (from stdin) after the file, so the file's bytes come back unchanged.
const END = '<nsroute-check-end>';

async function viewOf(name: string, file: NetnsFile): Promise<FileView> {
  const o = await output(['ip', 'netns', 'exec', name, 'cat', '--', `/etc/${file}`, '-'], END);
  if (o.exitCode !== 0 || !o.stdout.endsWith(END)) return { error: o.stderr.trim().split('\n')[0] || `exit ${o.exitCode}` };
  return { text: o.stdout.slice(0, -END.length) };
}

function readNetnsFile(name: string, file: NetnsFile): string | undefined {
  try {
    return readRegularFile(join(netnsEtcDir(name), file));
  } catch {
    return undefined; // unreadable counts as missing: the namespace cannot get it either
  }
}

async function holesMissing(): Promise<string[]> {
  try {
    return await forwardHolesMissing();
  } catch {
    return [];
  }
}

export async function gatherCheckFacts(config: NamespaceConfig, probeName: string): Promise<CheckFacts> {
  const name = config.name;
  const u = config.uplink;
  // The mark nsroute's nft table gives the namespace's packets (net/nft.ts).
  const mark = config.mode === 'nat' ? ['mark', String(u?.mark ?? HOST_MARK)] : [];
  const c6 = config as { ipv6?: string; nsAddress6?: string };
  const nat6 = c6.ipv6 === 'nat' && typeof c6.nsAddress6 === 'string';
  const none = Promise.resolve(undefined);
  const viewsP = Promise.all(NETNS_FILES.map(async (f) => [f, await viewOf(name, f)] as const));
  const nat = config.mode === 'nat';
  const [nsRoute, hostRoute, hostRouteUnmarked, hostAddrs, uplinkTable, rules, nft, dnsProbe, nsAddrs6, nsRoute6, hostRoute6, hostRoute6Unmarked] = await Promise.all([
    output(['ip', '-n', name, '-j', 'route', 'get', PROBE_DST4]),
    output(['ip', '-j', 'route', 'get', PROBE_DST4, 'from', config.nsAddress, 'iif', config.hostIface, ...mark]),
    // What the host does with a packet that lost nsroute's mark (a flushed firewall): it
    // must find no route (plan/guard.ts), never the main table.
    nat ? output(['ip', '-j', 'route', 'get', PROBE_DST4, 'from', config.nsAddress, 'iif', config.hostIface]) : none,
    output(['ip', '-j', '-4', 'addr', 'show']),
    u ? output(['ip', '-j', '-N', 'route', 'show', 'table', String(u.table)]) : none,
    u ? output(['ip', '-j', '-N', 'rule', 'show']) : none,
    output(['nft', '-j', 'list', 'table', 'inet', 'nsroute']),
    output(['ip', 'netns', 'exec', name, process.execPath, '-e', DNS_PROBE_SCRIPT, probeName, ...config.dns.slice(0, 3)]),
    output(['ip', '-n', name, '-6', '-j', 'addr', 'show']),
    output(['ip', '-n', name, '-6', '-j', 'route', 'get', PROBE_DST6]),
    nat6 ? output(['ip', '-6', '-j', 'route', 'get', PROBE_DST6, 'from', c6.nsAddress6!, 'iif', config.hostIface, ...mark]) : none,
    nat6 ? output(['ip', '-6', '-j', 'route', 'get', PROBE_DST6, 'from', c6.nsAddress6!, 'iif', config.hostIface]) : none,
  ]);
  const views = Object.fromEntries(await viewsP) as Record<NetnsFile, FileView>;
  const forwardHolesMissing = await holesMissing();
  // Published TCP ports: a connection from the host to each, and what listens inside (check/publish.ts).
  const tcp = tcpPublished(config);
  const [publishProbe, nsListeners] = tcp.length > 0
    ? await Promise.all([output([process.execPath, '-e', PUBLISH_PROBE_SCRIPT, ...tcp.map(probeTarget)]), output(['ss', '-N', name, '-H', '-l', '-n', '-t', '-u'])])
    : [undefined, undefined];
  const netnsFiles = Object.fromEntries(NETNS_FILES.map((f) => [f, readNetnsFile(name, f)])) as Record<NetnsFile, string | undefined>;
  return {
    config,
    probeName,
    nsRoute,
    hostRoute,
    ...(hostRouteUnmarked ? { hostRouteUnmarked } : {}),
    hostAddrs,
    ...(uplinkTable ? { uplinkTable } : {}),
    ...(rules ? { rules } : {}),
    nft,
    dnsProbe,
    nsAddrs6,
    nsRoute6,
    ...(hostRoute6 ? { hostRoute6 } : {}),
    ...(hostRoute6Unmarked ? { hostRoute6Unmarked } : {}),
    netnsFiles,
    views,
    forwardHolesMissing,
    ...(publishProbe ? { publishProbe } : {}),
    ...(nsListeners ? { nsListeners } : {}),
  };
}
