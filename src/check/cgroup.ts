// `nsroute check NAME` for a cgroup-mode NAME (issue 12): what a process in NAME's cgroup gets.
// gatherCgroupCheck reads (the cgroup, the route a member's marked packet takes and its source
// address, the uplink's table and rule, nsroute's cgroup table, the resolv.conf a command
// started in NAME sees, by starting one there); evaluateCgroupCheck is pure.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { hex } from '../net/nft.js';
import { CG_TABLE } from '../net/cgnft.js';
import { parseNameservers } from '../net/resolv.js';
import type { NamespaceConfig } from '../plan/types.js';
import { cgroup2Mount, localResolverSockets } from '../sys/cgroup.js';
import { run } from '../sys/run.js';
import { hostModeHooks } from '../apply/hostmode.js';
import { FALLBACK_METRIC, PROBE_DST4, type CommandOutput } from './evaluate.js';

export interface CgroupCheckFacts {
  config: NamespaceConfig;
  cgroupExists: boolean;
  route: CommandOutput; // ip -j route get PROBE_DST4 mark M
  uplinkTable?: CommandOutput; // ip -j -N route show table T
  rules?: CommandOutput; // ip -j -N rule show
  nft: CommandOutput; // nft -j list table inet nsroute_cgroup
  memberResolvConf: CommandOutput; // cat /etc/resolv.conf, run inside NAME's cgroup
  localResolverSockets: string[]; // nscd / resolved sockets a moved process may use
}

export interface CgroupCheck {
  id: string;
  ok: boolean;
  leak: boolean;
  detail: string;
}


export async function gatherCgroupCheck(config: NamespaceConfig): Promise<CgroupCheckFacts> {
  const mount = cgroup2Mount();
  const u = config.uplink;
  const get = (argv: string[]) => run(argv, { allowFail: true });
  const member = hostModeHooks('cgroup')!.commandArgv!(config, ['cat', '/etc/resolv.conf']);
  const [route, uplinkTable, rules, nft, memberResolvConf] = await Promise.all([
    get(['ip', '-j', 'route', 'get', PROBE_DST4, ...(u ? ['mark', String(u.mark)] : [])]),
    u ? get(['ip', '-j', '-N', 'route', 'show', 'table', String(u.table)]) : undefined,
    u ? get(['ip', '-j', '-N', 'rule', 'show']) : undefined,
    get(['nft', '-j', 'list', 'table', 'inet', CG_TABLE]),
    get(member),
  ]);
  return {
    config,
    cgroupExists: mount !== undefined && existsSync(join(mount, config.cgroup!.path)),
    route,
    ...(uplinkTable ? { uplinkTable } : {}),
    ...(rules ? { rules } : {}),
    nft,
    memberResolvConf,
    localResolverSockets: localResolverSockets(),
  };
}

function json(out: CommandOutput | undefined): Record<string, unknown>[] {
  try {
    const v = JSON.parse(out?.stdout || '[]') as unknown;
    return Array.isArray(v) ? (v as Record<string, unknown>[]) : [];
  } catch {
    return [];
  }
}

// The elements of one set or map of the cgroup table, by cgroup path (nft may print the path
// as seen from /sys/fs/cgroup: "unified/PATH" on a hybrid host).
function elements(out: CommandOutput, name: string, path: string): unknown[] {
  let doc: { nftables?: Record<string, { name?: string; elem?: unknown[] }>[] };
  try {
    doc = JSON.parse(out.stdout || '{}') as typeof doc;
  } catch {
    return [];
  }
  const key = (e: unknown) => (Array.isArray(e) ? e[0] : e);
  const of = (doc.nftables ?? []).map((o) => o.set ?? o.map).find((s) => s?.name === name);
  return (of?.elem ?? []).filter((e) => {
    const k = key(e);
    return typeof k === 'string' && (k === path || k.endsWith(`/${path}`));
  });
}

export function evaluateCgroupCheck(f: CgroupCheckFacts): { ok: boolean; leak: boolean; checks: CgroupCheck[] } {
  const c = f.config;
  const u = c.uplink;
  const path = c.cgroup!.path;
  const checks: CgroupCheck[] = [];
  checks.push({ id: 'cgroup', ok: f.cgroupExists, leak: false, detail: f.cgroupExists ? `cgroup ${path}` : `cgroup ${path} is missing: new members cannot join` });

  const tableOk = f.nft.exitCode === 0;
  const member = tableOk && elements(f.nft, 'cg_members', path).length > 0;
  const markEl = tableOk ? elements(f.nft, 'cg_mark', path)[0] : undefined;
  const markOk = !u || (Array.isArray(markEl) && markEl[1] === u.mark);
  checks.push({
    id: 'nft',
    ok: member && markOk,
    leak: !!u && !(member && markOk),
    detail: member && markOk ? `members' sockets marked ${u ? hex(u.mark) : '(host routing)'} by table inet ${CG_TABLE}` : `table inet ${CG_TABLE} lacks ${path}'s elements: members' traffic takes the host's routes`,
  });

  const r = json(f.route)[0];
  if (u) {
    const dev = r?.dev;
    const ok = f.route.exitCode === 0 && dev === u.dev && (!u.via || r?.gateway === u.via);
    checks.push({
      id: 'route',
      ok,
      leak: f.route.exitCode === 0 && !ok,
      detail: ok ? `a member's connection leaves via ${u.via ?? '(link)'} dev ${u.dev}, source ${String(r?.prefsrc ?? '?')} (masqueraded to the uplink's address)` : f.route.exitCode !== 0 ? `no route for members now (uplink down? the kill switch holds): ${f.route.stderr.trim()}` : `a member's connection would leave by ${String(dev)}, not ${u.dev}`,
    });
    const table = json(f.uplinkTable);
    const fallback = table.some((x) => (x.type === 'unreachable' || x.type === '7') && x.dst === 'default' && Number(x.metric) === FALLBACK_METRIC);
    const rule = json(f.rules).some((x) => Number(x.priority) === u.pref && String(x.table) === String(u.table) && Number(x.fwmark) === u.mark);
    checks.push({
      id: 'killswitch',
      ok: fallback && rule,
      leak: !rule,
      detail: fallback && rule ? `table ${u.table} ends in an unreachable route: with ${u.dev} down, members' traffic fails` : `${rule ? '' : `the rule fwmark ${hex(u.mark)} lookup ${u.table} is missing; `}${fallback ? '' : `table ${u.table} has no unreachable fallback`}`,
    });
  } else {
    checks.push({ id: 'route', ok: f.route.exitCode === 0, leak: false, detail: 'host routing (no --via/--dev)' });
  }

  const seen = parseNameservers(f.memberResolvConf.stdout);
  const dnsOk = f.memberResolvConf.exitCode === 0 && seen.join(',') === c.dns.join(',');
  const dnat = !c.dns[0] || (tableOk && elements(f.nft, 'cg_dns', path).some((e) => Array.isArray(e) && e[1] === c.dns[0]));
  const sockets = f.localResolverSockets.length > 0 ? `; moved processes may still resolve through ${f.localResolverSockets.join(', ')}, which no firewall rule sees (commands started by exec do not)` : '';
  checks.push({
    id: 'dns',
    ok: dnsOk && dnat,
    leak: !dnat,
    detail: dnsOk && dnat ? `a command started in ${c.name} asks ${seen.join(', ')}; members' port-53 traffic goes to ${c.dns[0] ?? '-'}${sockets}` : `${dnsOk ? '' : `resolv.conf in ${c.name} names ${seen.join(', ') || 'nothing'}, not ${c.dns.join(', ')}; `}${dnat ? '' : `no DNAT of members' DNS to ${c.dns[0]}`}`,
  });

  const v6off = c.ipv6 !== 'nat';
  const blocked = tableOk && elements(f.nft, 'cg_v6off', path).length > 0;
  checks.push({
    id: 'ipv6',
    ok: !v6off || blocked,
    leak: v6off && !blocked,
    detail: v6off ? (blocked ? "members' IPv6 is rejected at once" : "members' IPv6 is not blocked") : "members' IPv6 leaves by the uplink (nat)",
  });
  return { ok: checks.every((x) => x.ok), leak: checks.some((x) => x.leak), checks };
}
