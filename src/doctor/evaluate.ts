// `nsroute doctor`: what this machine can and cannot do for nsroute, and why, one line each
// with the fix. Pure: doctor/gather.ts collects the facts (tool versions, kernel feature
// probes run in a throwaway network namespace, mounts, rules, the nft ruleset...), unit
// tests feed recorded ones. A `fail` means nsroute cannot work here (exit 4); a `warn` that a
// feature or a situation needs attention; `info` explains what nsroute will do about it.
import { forwardChains } from '../net/fwholes.js';
import type { IdBases } from '../net/ids.js';
import { findClashes, parseRuleJson, suggestIds, tablesWithRoutes } from './clash.js';

export type DoctorStatus = 'ok' | 'info' | 'warn' | 'fail';
export interface DoctorCheck {
  id: string;
  status: DoctorStatus;
  summary: string;
  fix?: string;
  owner?: string; // for id clashes: the tool the other ids look like
}
export interface DoctorReport {
  ok: boolean; // no check failed: nsroute can work here
  ids: IdBases;
  checks: DoctorCheck[];
}

// What a kernel probe found; error is the tool's first line of stderr.
export interface Probe {
  ok: boolean;
  error?: string;
}
export const KERNEL_PROBES = ['netns', 'veth', 'policy-routing', 'nft-nat', 'nft-fib', 'conntrack', 'nft-socket', 'tc', 'bridge', 'macvlan', 'ipv6'] as const;
export type KernelProbe = (typeof KERNEL_PROBES)[number];

export interface DoctorFacts {
  nodeVersion: string;
  tools: Record<string, string | null>; // name -> first line of its version (or "present"), null when missing
  probes: Partial<Record<KernelProbe, Probe>>;
  mounts: string; // /proc/self/mounts
  systemdRunning: boolean; // /run/systemd/system exists
  resolvConf?: string; // the host's /etc/resolv.conf
  resolvedUpstreams?: string; // /run/systemd/resolve/resolv.conf
  nscdSocket: boolean;
  rules4: unknown; // ip -j rule
  rules6: unknown; // ip -6 -j rule
  routes4: unknown; // ip -j route show table all
  routes6: unknown;
  nftText: string; // nft list ruleset
  nftJson: unknown; // nft -j list ruleset
  iptablesForward: { bin: string; lines: string[] }[]; // `iptables -S FORWARD` per backend with a filter table
  sysctls: Record<string, string | undefined>; // net.ipv4.conf.all.rp_filter, ...default.rp_filter, net.ipv4.ip_forward
  ids: IdBases; // in use
  idsConf: { file?: string; error?: string; configured?: IdBases; deferred?: boolean };
}

const TOOL_PACKAGES: Record<string, { pkg: string; need: 'required' | 'optional'; why: string }> = {
  ip: { pkg: 'iproute2', need: 'required', why: 'namespaces, links, routes and rules' },
  nft: { pkg: 'nftables', need: 'required', why: 'NAT and marks' },
  nsenter: { pkg: 'util-linux', need: 'required', why: 'entering the namespace' },
  setpriv: { pkg: 'util-linux', need: 'required', why: 'running commands as the user who ran sudo' },
  tc: { pkg: 'iproute2', need: 'optional', why: 'traffic shaping' },
  udhcpc: { pkg: 'udhcpc', need: 'optional', why: '--dhcp in bridge and macvlan modes' },
  iptables: { pkg: 'iptables', need: 'optional', why: "opening other firewalls' FORWARD chains (Docker, ufw)" },
  systemctl: { pkg: 'systemd', need: 'optional', why: 'enable and attach' },
};

const PROBE_TEXT: Record<KernelProbe, { need: 'required' | 'optional'; what: string; fix: string }> = {
  netns: { need: 'required', what: 'network namespaces', fix: 'a kernel with CONFIG_NET_NS=y; inside a container, run nsroute on the host or give the container CAP_SYS_ADMIN' },
  veth: { need: 'required', what: 'veth pairs', fix: 'modprobe veth (CONFIG_VETH)' },
  'policy-routing': { need: 'required', what: 'policy routing (fwmark rules, tables, unreachable routes)', fix: 'a kernel with CONFIG_IP_MULTIPLE_TABLES and CONFIG_IP_ROUTE_FWMARK' },
  'nft-nat': { need: 'required', what: 'nftables NAT (masquerade)', fix: 'modprobe nft_chain_nat nft_masq (CONFIG_NFT_NAT, CONFIG_NFT_MASQ)' },
  conntrack: { need: 'required', what: 'connection tracking (ct mark on replies)', fix: 'modprobe nf_conntrack nft_ct (CONFIG_NFT_CT)' },
  'nft-fib': { need: 'optional', what: 'nftables fib lookups', fix: 'modprobe nft_fib_inet (CONFIG_NFT_FIB_INET)' },
  'nft-socket': { need: 'optional', what: 'nftables socket matching (cgroup modes)', fix: 'modprobe nft_socket (CONFIG_NFT_SOCKET)' },
  tc: { need: 'optional', what: 'traffic control qdiscs (tbf/htb)', fix: 'modprobe sch_tbf sch_htb' },
  bridge: { need: 'optional', what: 'bridges (--mode bridge)', fix: 'modprobe bridge' },
  macvlan: { need: 'optional', what: 'macvlan (--mode macvlan)', fix: 'modprobe macvlan' },
  ipv6: { need: 'optional', what: 'IPv6 (--ipv6 nat)', fix: 'boot without ipv6.disable=1' },
};

const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

function nodeCheck(version: string): DoctorCheck {
  const major = Number(/^v?(\d+)/.exec(version)?.[1] ?? 0);
  return major >= 20
    ? { id: 'node', status: 'ok', summary: `Node.js ${version}` }
    : { id: 'node', status: 'fail', summary: `Node.js ${version} is too old: nsroute needs 20 or newer`, fix: 'install Node.js 20 (Debian 13: apt install nodejs; Debian 12: NodeSource or nvm)' };
}

function toolChecks(tools: DoctorFacts['tools']): DoctorCheck[] {
  return Object.entries(TOOL_PACKAGES).map(([tool, t]) => {
    const v = tools[tool];
    if (v) return { id: `tool:${tool}`, status: 'ok', summary: `${tool}: ${v}` };
    return {
      id: `tool:${tool}`,
      status: t.need === 'required' ? 'fail' : 'warn',
      summary: `${tool} is missing (${t.need === 'required' ? 'needed' : 'only needed'} for ${t.why})`,
      fix: `apt install ${t.pkg}`,
    };
  });
}

function probeChecks(probes: DoctorFacts['probes']): DoctorCheck[] {
  const netnsFailed = probes.netns && !probes.netns.ok;
  return KERNEL_PROBES.map((p) => {
    const t = PROBE_TEXT[p];
    const r = probes[p];
    if (r?.ok) return { id: `kernel:${p}`, status: 'ok', summary: t.what };
    const why = netnsFailed && p !== 'netns' ? 'not tried: no network namespace to try it in' : (r?.error ?? 'not tried');
    return { id: `kernel:${p}`, status: t.need === 'required' ? 'fail' : 'warn', summary: `${t.what}: unavailable (${why})`, fix: t.fix };
  });
}

export function cgroup2Mount(mounts: string): string | undefined {
  return mounts
    .split('\n')
    .map((l) => l.split(' '))
    .find((f) => f[2] === 'cgroup2')?.[1];
}

function cgroupCheck(mounts: string): DoctorCheck {
  const at = cgroup2Mount(mounts);
  if (at === '/sys/fs/cgroup') return { id: 'cgroup2', status: 'ok', summary: 'cgroup v2 at /sys/fs/cgroup (unified)' };
  if (at) return { id: 'cgroup2', status: 'info', summary: `cgroup v2 at ${at} (hybrid layout): nft resolves cgroup paths against /sys/fs/cgroup, so cgroup-based nft rules must be loaded in a private mount namespace with it bind-mounted there` };
  return { id: 'cgroup2', status: 'warn', summary: 'no cgroup v2 mounted: cgroup-based modes will not work', fix: 'mount -t cgroup2 none /sys/fs/cgroup (or boot with systemd.unified_cgroup_hierarchy=1)' };
}

function nameservers(text: string | undefined): string[] {
  return (text ?? '').split('\n').flatMap((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1] ?? []);
}

function dnsChecks(f: DoctorFacts): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  const servers = nameservers(f.resolvConf);
  const loopback = servers.filter((s) => s.startsWith('127.') || s === '::1');
  if (loopback.length && loopback.length === servers.length) {
    const upstream = nameservers(f.resolvedUpstreams).filter((s) => !s.startsWith('127.'));
    out.push(
      upstream.length
        ? { id: 'dns', status: 'info', summary: `resolv.conf points at a local stub (${loopback.join(', ')}), unreachable inside a namespace: nsroute uses systemd-resolved's upstreams (${upstream.join(', ')}) unless --dns says otherwise` }
        : { id: 'dns', status: 'warn', summary: `resolv.conf points only at a local stub (${loopback.join(', ')}) and no upstream servers are known: namespaces without --dns fall back to the gateway`, fix: 'give --dns (or dns = [...] in the profile)' },
    );
  } else {
    out.push({ id: 'dns', status: 'ok', summary: servers.length ? `host name servers: ${servers.join(', ')}` : 'no name servers in resolv.conf: namespaces use --dns or the gateway' });
  }
  const daemons = [f.resolvedUpstreams !== undefined || loopback.includes('127.0.0.53') ? 'systemd-resolved' : '', f.nscdSocket ? 'nscd' : ''].filter(Boolean);
  if (daemons.length) {
    out.push({ id: 'dns-daemons', status: 'info', summary: `${daemons.join(' and ')} answer over unix sockets that cross namespaces (a DNS leak path): nsroute hides their sockets from its commands and takes them out of nsswitch.conf` });
  }
  return out;
}

function firewallChecks(f: DoctorFacts): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  const chains = forwardChains(f.nftJson).filter((c) => c.restrictive);
  for (const c of chains) {
    out.push({ id: `firewall:nft ${c.family} ${c.table} ${c.name}`, status: 'info', summary: `nft ${c.family} ${c.table} chain ${c.name} drops forwarded traffic: nsroute puts two accept rules (comment "nsroute") at its top while namespaces exist` });
  }
  for (const b of f.iptablesForward) {
    const policyDrop = b.lines.includes('-P FORWARD DROP');
    const rules = b.lines.filter((l) => l.startsWith('-A FORWARD ') && !l.includes('NSROUTE-FORWARD'));
    if (!policyDrop && rules.length === 0) continue;
    const who = b.lines.some((l) => l.includes('DOCKER')) ? 'Docker' : b.lines.some((l) => l.includes('ufw')) ? 'ufw' : undefined;
    out.push({
      id: `firewall:${b.bin}`,
      status: 'info',
      summary: `${b.bin} FORWARD ${policyDrop ? 'policy DROP' : `has ${rules.length} rule(s)`}${who ? ` (${who})` : ''}: nsroute jumps to its own NSROUTE-FORWARD chain from its top while namespaces exist`,
    });
  }
  if (out.length === 0) out.push({ id: 'firewall', status: 'ok', summary: 'no other firewall drops forwarded traffic' });
  return out;
}

function sysctlChecks(s: DoctorFacts['sysctls']): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  const rp = Math.max(Number(s['net.ipv4.conf.all.rp_filter'] ?? 0), Number(s['net.ipv4.conf.default.rp_filter'] ?? 0));
  out.push(
    rp === 1
      ? { id: 'rp_filter', status: 'info', summary: 'strict reverse-path filtering (rp_filter=1): nsroute keeps the uplink mark on replies and sets src_valid_mark on the uplink' }
      : { id: 'rp_filter', status: 'ok', summary: `rp_filter=${rp}${rp === 2 ? ' (loose)' : ''}` },
  );
  const fwd = s['net.ipv4.ip_forward'];
  out.push({ id: 'ip_forward', status: 'info', summary: fwd === '1' ? 'IPv4 forwarding is on' : 'IPv4 forwarding is off: nsroute turns it on while namespaces exist and restores it after' });
  return out;
}

function idChecks(f: DoctorFacts): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  const { ids } = f;
  if (f.idsConf.error) out.push({ id: 'ids:config', status: 'fail', summary: f.idsConf.error, fix: 'fix or remove it (keys: mark_base, table_base, rule_pref)' });
  else if (f.idsConf.deferred) {
    out.push({ id: 'ids:config', status: 'warn', summary: `${f.idsConf.file} is not in effect yet: namespaces created with the previous ids exist`, fix: 'take them down (nsroute list; nsroute down NAME)' });
  }
  const rules = [...parseRuleJson(f.rules4, 4, ids), ...parseRuleJson(f.rules6, 6, ids)];
  const tables = new Set([...tablesWithRoutes(f.routes4), ...tablesWithRoutes(f.routes6)]);
  const clashes = findClashes(rules, tables, f.nftText, ids);
  const range = `marks ${hex(ids.markBase + 1)}-, tables ${ids.tableBase + 1}-, rule priority ${ids.rulePref}`;
  if (clashes.length === 0) {
    out.push({ id: 'ids', status: 'ok', summary: `nsroute's ids (${range}) are not used by anything else` });
    return out;
  }
  const s = suggestIds(rules, tables, f.nftText, ids);
  const keys: string[] = [];
  if (clashes.some((c) => c.what === 'mark')) keys.push(`mark_base = ${hex(s.markBase)}`);
  if (clashes.some((c) => c.what === 'table')) keys.push(`table_base = ${s.tableBase}`);
  if (clashes.some((c) => c.what === 'rule')) keys.push(`rule_pref = ${s.rulePref}`);
  const fix = `move nsroute's ids: put ${keys.join(', ')} in /etc/nsroute/nsroute.conf`;
  clashes.forEach((c, i) => {
    out.push({ id: `ids:${c.what}:${i + 1}`, status: c.level, summary: `${c.owner ? `${c.owner}: ` : ''}${c.detail}`, fix, ...(c.owner ? { owner: c.owner } : {}) });
  });
  return out;
}

export function evaluateDoctor(f: DoctorFacts): DoctorReport {
  const checks: DoctorCheck[] = [
    nodeCheck(f.nodeVersion),
    ...toolChecks(f.tools),
    ...probeChecks(f.probes),
    cgroupCheck(f.mounts),
    f.systemdRunning
      ? { id: 'systemd', status: 'ok', summary: 'systemd is running: enable and attach manage units' }
      : { id: 'systemd', status: 'info', summary: 'systemd is not running (container or chroot?): enable and attach write the units and print the systemctl commands to run' },
    ...dnsChecks(f),
    ...firewallChecks(f),
    ...sysctlChecks(f.sysctls),
    ...idChecks(f),
  ];
  return { ok: !checks.some((c) => c.status === 'fail'), ids: f.ids, checks };
}

// The text report: one line per check, the fix indented under it.
export function renderDoctor(r: DoctorReport): string {
  const mark: Record<DoctorStatus, string> = { ok: 'ok  ', info: 'info', warn: 'warn', fail: 'FAIL' };
  const lines = r.checks.flatMap((c) => [`${mark[c.status]}  ${c.summary}`, ...(c.fix && c.status !== 'ok' && c.status !== 'info' ? [`      fix: ${c.fix}`] : [])]);
  const fails = r.checks.filter((c) => c.status === 'fail').length;
  const warns = r.checks.filter((c) => c.status === 'warn').length;
  lines.push('', r.ok ? `nsroute can work on this machine${warns ? ` (${warns} warning${warns > 1 ? 's' : ''})` : ''}.` : `nsroute cannot work on this machine: ${fails} problem${fails > 1 ? 's' : ''} above.`);
  return lines.join('\n') + '\n';
}
