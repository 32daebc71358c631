// `nsroute check` of a --mode replies policy (plan/replies.ts): no namespace to probe from, so
// the probes are the host's own: where a reply carrying the policy's mark is routed, the rule
// and table that route it, nsroute's nft objects that put the mark on, and src_valid_mark
// where rp_filter needs it. gatherRepliesFacts reads (changes nothing); evaluateReplies is pure.
import { hex, nftHasReplies } from '../net/nft.js';
import { parseRules } from '../net/iproute-json.js';
import type { NamespaceConfig } from '../plan/types.js';
import { run } from '../sys/run.js';
import { tryRead, srcValidMarkPath } from '../sys/sysctl.js';
import { PROBE_DST4, FALLBACK_METRIC, type CommandOutput } from './evaluate.js';

export interface RepliesFacts {
  config: NamespaceConfig;
  route: CommandOutput; // ip -j route get PROBE_DST4 mark MARK
  rules: CommandOutput; // ip -j -N rule show
  table: CommandOutput; // ip -j route show table T
  nft: CommandOutput; // nft -j list table inet nsroute
  rpFilter: { all?: string; dev?: string; srcValidMark?: string };
}

export type RepliesCheckId = 'route' | 'rule' | 'marks' | 'rp_filter';

export interface RepliesCheck {
  id: RepliesCheckId;
  ok: boolean;
  leak: boolean; // replies leave by another path than DEV now
  detail: string;
}

export interface RepliesReport {
  name: string;
  ok: boolean;
  leak: boolean;
  checks: RepliesCheck[];
}

async function output(argv: readonly string[]): Promise<CommandOutput> {
  try {
    return await run(argv, { allowFail: true });
  } catch (e) {
    return { exitCode: -1, stdout: '', stderr: (e as Error).message };
  }
}

export async function gatherRepliesFacts(config: NamespaceConfig): Promise<RepliesFacts> {
  const u = config.uplink!;
  const [route, rules, table, nft] = await Promise.all([
    output(['ip', '-j', 'route', 'get', PROBE_DST4, 'mark', String(u.mark)]),
    output(['ip', '-j', '-N', 'rule', 'show']),
    output(['ip', '-j', 'route', 'show', 'table', String(u.table)]),
    output(['nft', '-j', 'list', 'table', 'inet', 'nsroute']),
  ]);
  return {
    config,
    route,
    rules,
    table,
    nft,
    rpFilter: { all: tryRead('conf/all/rp_filter'), dev: tryRead(`conf/${u.dev}/rp_filter`), srcValidMark: tryRead(srcValidMarkPath(u.dev)) },
  };
}

function json(o: CommandOutput): unknown {
  if (o.exitCode !== 0) return undefined;
  try {
    return JSON.parse(o.stdout || 'null');
  } catch {
    return undefined;
  }
}

function firstLine(o: CommandOutput): string {
  return (o.stderr || o.stdout).trim().split('\n')[0] || `exit ${o.exitCode}`;
}

export function evaluateReplies(f: RepliesFacts): RepliesReport {
  const u = f.config.uplink!;
  const name = f.config.name;
  const fix = `\`nsroute up ${name}\` or \`nsroute gc\` puts it back`;
  const checks: RepliesCheck[] = [];

  const hop = (json(f.route) as { dev?: string; gateway?: string }[] | undefined)?.[0];
  const routeOk = hop?.dev === u.dev && (u.via === undefined || hop.gateway === u.via);
  checks.push({
    id: 'route',
    ok: routeOk,
    leak: !routeOk && hop !== undefined,
    detail: routeOk
      ? `a reply carrying mark ${hex(u.mark)} leaves via ${u.via} dev ${u.dev}`
      : hop
        ? `a reply carrying mark ${hex(u.mark)} leaves via ${hop.gateway ?? '(no gateway)'} dev ${hop.dev}, not via ${u.via} dev ${u.dev}; ${fix}`
        : `a reply carrying mark ${hex(u.mark)} has no route (${firstLine(f.route)}): ${u.dev} is down or has lost its route; it comes back with the link`,
  });

  const rule = parseRules(json(f.rules) ?? []).some((r) => r.priority === u.pref && r.fwmark === u.mark && r.table === u.table);
  const routes = (json(f.table) as { dst?: string; type?: string; metric?: number }[] | undefined) ?? [];
  const fallback = routes.some((r) => r.dst === 'default' && r.type === 'unreachable' && r.metric === FALLBACK_METRIC);
  checks.push({
    id: 'rule',
    ok: rule && fallback,
    leak: !rule,
    detail:
      rule && fallback
        ? `rule ${u.pref}: fwmark ${hex(u.mark)} lookup ${u.table}, which ends in an unreachable route (no other way out)`
        : `${[!rule ? `the rule fwmark ${hex(u.mark)} lookup ${u.table} is missing` : '', !fallback ? `table ${u.table} lost its unreachable fallback` : ''].filter(Boolean).join(', ')}; ${fix}`,
  });

  const marks = nftHasReplies(json(f.nft), u.dev, u.mark);
  checks.push({
    id: 'marks',
    ok: marks,
    leak: !marks,
    detail: marks
      ? `nsroute's nft table marks connections arriving on ${u.dev} (${hex(u.mark)}) and their replies`
      : `nsroute's nft table does not mark connections arriving on ${u.dev} (a flushed firewall?): their replies follow the main table; ${fix}`,
  });

  const rp = Math.max(Number(f.rpFilter.all ?? 0), Number(f.rpFilter.dev ?? 0));
  const svm = f.rpFilter.srcValidMark === '1';
  checks.push({
    id: 'rp_filter',
    ok: rp === 0 || svm,
    leak: false,
    detail:
      rp === 0
        ? `rp_filter is off on ${u.dev}`
        : svm
          ? `rp_filter ${rp} on ${u.dev} checks incoming packets with their mark (src_valid_mark 1)`
          : `rp_filter ${rp} on ${u.dev} without src_valid_mark: clients beyond ${u.via} are dropped on the way in; ${fix}`,
  });

  return { name, ok: checks.every((c) => c.ok), leak: checks.some((c) => c.leak), checks };
}

export function repliesReportText(r: RepliesReport): string {
  const lines = r.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.id}: ${c.detail}`);
  const failed = r.checks.filter((c) => !c.ok);
  lines.push(failed.length === 0 ? `${r.name}: all ${r.checks.length} checks passed` : `${r.name}: ${failed.length} of ${r.checks.length} checks failed (${failed.map((c) => c.id).join(', ')})`);
  return lines.join('\n');
}
