import type { Profile } from '../profile/profile.js';
import type { NamespaceConfig } from './types.js';
import { publishSpec, type PublishedPort } from '../net/publish-spec.js';

// Which settings of a request differ from those of the NAME that is up (a join must not
// silently run with other settings than asked for). Its own module: a hot exec decides with it
// before loading the planner.
export function conflicts(p: Profile, c: NamespaceConfig): string[] {
  const out: string[] = [];
  if (c.mode !== 'nat' && c.mode !== 'cgroup') {
    if (p.via !== undefined && p.via !== c.lan?.gateway) out.push(`via ${c.lan?.gateway ?? '(dhcp)'}`);
  } else if (p.via !== undefined && p.via !== c.uplink?.via) out.push(`via ${c.uplink?.via ?? '(host routing)'}`);
  if (p.dev !== undefined && p.dev !== c.uplink?.dev) out.push(`dev ${c.uplink?.dev ?? '(host routing)'}`);
  if (p.dns.length > 0 && p.dns.join(',') !== c.dns.join(',')) out.push(`dns ${c.dns.join(',')}`);
  if (p.subnet !== undefined && p.subnet !== c.subnet) out.push(`subnet ${c.subnet}`);
  if (p.ipv6 !== undefined && p.ipv6 !== (c.ipv6 ?? 'off')) out.push(`ipv6 ${c.ipv6 ?? 'off'}`);
  if (p.mode !== undefined && p.mode !== c.mode) out.push(`mode ${c.mode}`);
  if (p.bridge !== undefined && (c.lan?.takeover || p.bridge !== c.lan?.bridge)) out.push(`bridge ${c.lan?.bridge ?? '(none)'}`);
  if (p.uplink !== undefined && p.uplink !== (c.lan?.takeover ?? c.lan?.parent)) out.push(`uplink ${c.lan?.takeover ?? c.lan?.parent ?? '(none)'}`);
  if (p.address !== undefined && p.address !== c.lan?.address) out.push(`address ${c.lan?.address ?? '(none)'}`);
  if (p.dhcp !== undefined && p.dhcp !== (c.lan?.dhcp ?? false)) out.push(c.lan?.dhcp ? 'dhcp' : 'no dhcp');
  if (p.via6 !== undefined && p.via6 !== c.via6) out.push(`via6 ${c.via6 ?? '(none)'}`);
  out.push(...inboundConflicts(p, c));
  return out;
}

// What `up` of a running NAME may change in place (the caps); anything else about inbound
// traffic needs a new NAME. Returns the conflicting settings, as plan's conflicts() does.
export function inboundConflicts(profile: { publish?: PublishedPort[] }, c: NamespaceConfig): string[] {
  if (profile.publish === undefined) return [];
  const norm = (l: readonly PublishedPort[]) => l.map(publishSpec).sort().join(',');
  return norm(profile.publish) === norm(c.publish ?? []) ? [] : [`publish ${norm(c.publish ?? []) || '(none)'}`];
}
