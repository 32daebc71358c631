import { UserError } from '../errors.js';
import type { Profile } from '../profile/profile.js';
import { chooseUplink, hostModeConfig, type Plan, type UplinkWait } from './plan.js';
import type { HostFacts, NamespaceConfig, Step } from './types.js';

// --mode replies (seed 003): a host with two uplinks answers a connection that came in by the
// second one (an FTP dropbox on eth1) by its default route (eth0), where the reply is dropped
// (by the far side, or by strict rp_filter on the way in). NAME names a policy, not a
// namespace: connections that arrive on DEV addressed to the host itself are answered via
// GATEWAY on DEV, whatever the main table says. The seed's recipe, with nsroute's objects:
//
//   uplink-route   the uplink's table (default via GATEWAY dev DEV + the unreachable fallback),
//                  its rule `fwmark MARK lookup TABLE` (pref rule_pref), src_valid_mark on DEV
//                  (saved, put back): the per-uplink machinery nat namespaces use, shared with
//                  those that go via the same GATEWAY and DEV (same table, same mark)
//   replies-mark   nsroute's nft table: ct mark MARK on new connections arriving on DEV to a
//                  local address, put on their packets in both directions (net/nft.ts)
//
// The mark is the uplink's (mark_base + index, never the base itself, which the fail-closed
// rules let through to the main table: plan/guard.ts); the guard rules catch only packets from
// nsroute's namespace blocks, never the host's own replies. IPv4 only.
export function buildRepliesPlan(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[], opts: { waitForUplink?: UplinkWait } = {}): Plan {
  const dev = profile.dev!;
  const owner = others.find((o) => o.mode === 'replies' && o.uplink?.dev === dev);
  if (owner) {
    throw new UserError(`replies arriving on ${dev} are already routed by ${owner.name} (via ${owner.uplink?.via})`, `\`nsroute down ${owner.name}\` first, or use that policy`);
  }
  const { uplink, waiting } = chooseUplink(profile, facts, others, opts.waitForUplink ?? false);
  if (!uplink) throw new UserError('--mode replies needs --dev IFACE and --via GATEWAY', 'add both');
  const config = hostModeConfig(profile.name, 'replies', { uplink, dns: [], dnsSource: 'host' });
  return { config, steps: repliesSteps(config), ...(waiting ? { waiting } : {}) };
}

// In order: the route and its rule before any packet carries the mark; undone backwards.
export function repliesSteps(config: NamespaceConfig): Step[] {
  const uplink = config.uplink!;
  return [
    { kind: 'uplink-route', uplink },
    { kind: 'replies-mark', dev: uplink.dev, mark: uplink.mark },
  ];
}

// What `up` of a replies NAME that is up already compares (lifecycle's conflicts for this mode).
export function repliesConflicts(p: Profile, c: NamespaceConfig): string[] {
  const out: string[] = [];
  if (p.mode !== undefined && p.mode !== c.mode) out.push(`mode ${c.mode}`);
  if (p.via !== undefined && p.via !== c.uplink?.via) out.push(`via ${c.uplink?.via}`);
  if (p.dev !== undefined && p.dev !== c.uplink?.dev) out.push(`dev ${c.uplink?.dev}`);
  // Options of the namespace modes asked of a NAME that has no namespace.
  const nsOnly = (['subnet', 'ipv6', 'via6', 'bridge', 'uplink', 'address', 'dhcp'] as const).filter((k) => p[k] !== undefined);
  if (p.dns.length > 0 || nsOnly.length > 0) out.push(`mode replies, without ${[...(p.dns.length > 0 ? ['dns'] : []), ...nsOnly].join(', ')}`);
  return out;
}
