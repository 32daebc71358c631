import { UserError } from '../errors.js';
import { chooseDnsServers, renderGaiConf, renderNsswitchConf, renderResolvConf } from '../net/resolv.js';
import type { Profile } from '../profile/profile.js';
import { chooseUplink, chooseVia6, hostModeConfig } from './plan.js';
import type { CgroupConfig, HostFacts, NamespaceConfig, Step } from './types.js';
import type { Plan } from './plan.js';

// cgroup mode (issue 12, seeds 000-002): NAME is a cgroup v2 directory, not a namespace. Its
// member processes stay in the host's network (its loopback, its abstract sockets); the
// sockets they create are marked by nsroute's cgroup table (net/cgnft.ts), and the mark
// selects the uplink's table through the same rule, table and unreachable fallback (kill
// switch) as nat mode. Pure: profile + facts -> config and steps.
export function buildCgroupPlan(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[]): Plan {
  const host = facts.cgroupHost;
  if (!host?.mount) {
    throw new UserError('cgroup mode needs cgroup v2, and this host has no cgroup2 filesystem mounted', 'mount it (e.g. `mount -t cgroup2 none /sys/fs/cgroup`), or use --mode nat');
  }
  if (host.systemd && host.parent === 'nsroute') {
    throw new UserError(
      'cgroup mode on a host where systemd is PID 1 needs a cgroup subtree systemd delegated to nsroute, which nsroute does not set up yet',
      'use --mode nat (README: cgroup mode, where the cgroup lives)',
    );
  }
  const path = `${host.parent}/${profile.name}`;
  const cgroup: CgroupConfig = { path, level: path.split('/').length };
  const clash = others.find((o) => o.cgroup && o.cgroup.level !== cgroup.level);
  if (clash) {
    throw new UserError(`${clash.name}'s cgroup is ${clash.cgroup!.path}, at another depth than ${path}: one nft table cannot match both`, `take ${clash.name} down first, or keep the cgroup parent as it was`);
  }
  const { uplink, waiting } = chooseUplink(profile, facts, others, false);
  const dns = chooseDnsServers({
    explicit: profile.dns,
    hostResolvConf: facts.hostResolvConf,
    resolvedConf: facts.resolvedConf,
    gateway: uplink?.via ?? facts.routes.find((r) => r.table === 254 && r.dst === 'default' && r.gateway)?.gateway,
  });
  const config = hostModeConfig(profile.name, 'cgroup', { cgroup, uplink, dns: dns.servers, dnsSource: dns.source });
  if (profile.ipv6 === 'nat') {
    config.ipv6 = 'nat';
    const via6 = uplink ? chooseVia6(profile, uplink, facts) : undefined;
    if (via6) config.via6 = via6;
  }
  return { config, steps: cgroupStepsFor(config, facts.hostNsswitch), ...(waiting ? { waiting } : {}) };
}

// In order: the cgroup first (nft resolves its path when the element is loaded), the files a
// command's private mount namespace puts over /etc, the uplink's table and rule, then the
// elements that make members' sockets take it. Undone in reverse: the marking stops first.
export function cgroupStepsFor(config: NamespaceConfig, nsswitch?: string): Step[] {
  const { name, uplink } = config;
  const cg = config.cgroup!;
  const v6 = config.ipv6 === 'nat';
  return [
    { kind: 'cgroup-dir', path: cg.path },
    {
      kind: 'netns-files',
      netns: name,
      files: { 'resolv.conf': renderResolvConf(name, config.dns), 'gai.conf': renderGaiConf(name), 'nsswitch.conf': renderNsswitchConf(name, nsswitch) },
    },
    ...(uplink ? [{ kind: 'uplink-route', uplink } as const] : []),
    ...(uplink ? [{ kind: 'cgroup-localnet', dev: uplink.dev } as const] : []),
    ...(uplink && v6 ? [{ kind: 'uplink-route6', uplink, ...(config.via6 ? { via6: config.via6 } : {}) } as const] : []),
    {
      kind: 'cgroup-nft',
      path: cg.path,
      level: cg.level,
      ...(uplink ? { mark: uplink.mark } : {}),
      ...(config.dns[0] ? { dns: config.dns[0] } : {}),
      ipv6: v6 ? 'nat' : 'off',
    },
  ];
}
