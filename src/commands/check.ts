import { UserError } from '../errors.js';
import { namespaceNameservers, refuseInsideNamespace } from '../apply/lifecycle.js';
import { isLiveNetns } from '../apply/views.js';
import { DEFAULT_PROBE_NAME, evaluate, reportText } from '../check/evaluate.js';
import { gatherCheckFacts } from '../check/gather.js';
import { validateName } from '../net/names.js';
import { isFromEarlierBoot, readState } from '../state/store.js';
import { STATUS_NOT_UP } from './list.js';

// Exit code of `check` when a check failed: something leaks or is broken (README, exit codes).
export const CHECK_FAILED = 4;

export interface CheckOptions {
  json?: boolean;
  name?: string;
}

function notUpHint(name: string, state: ReturnType<typeof readState>, live: boolean): string {
  if (state && state.status !== 'up' && !isFromEarlierBoot(state)) return 'a create or teardown of it was interrupted or is running; `nsroute gc` finishes it';
  if (!state && live) return `its state is missing (was the run dir removed?); \`nsroute gc\` recovers it if nsroute made it`;
  return `\`nsroute up ${name}\` brings it up; \`nsroute list\` shows what is up`;
}

// Proves from inside the namespace where its traffic and lookups go. Changes nothing (no
// lock, no sweep): it reports what it finds, including what the next command would clean up.
// A name the DNS probe can put in a query: dot-separated labels of 1-63 letters, digits, "_"
// or "-" (not leading "-"), at most 253 characters, an optional final dot.
function isDnsName(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  return name.length >= 1 && name.length <= 253 && name.split('.').every((l) => /^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$/.test(l));
}

export async function runCheck(name: string, opts: CheckOptions): Promise<number> {
  validateName(name);
  if (typeof process.geteuid === 'function' && process.geteuid() !== 0) {
    throw new UserError('nsroute check needs root: it enters the namespace and reads the firewall', 'run it with sudo');
  }
  const probeName = opts.name ?? DEFAULT_PROBE_NAME;
  if (!isDnsName(probeName)) {
    throw new UserError(`--name ${JSON.stringify(probeName)} is not a DNS name`, 'pass a name like example.org');
  }
  refuseInsideNamespace();
  const state = readState(name);
  // A host mode (--mode replies): probes of the host's own, no namespace to enter.
  if (state && state.status === 'up' && !isFromEarlierBoot(state) && state.config.mode === 'replies') {
    const { gatherRepliesFacts, evaluateReplies, repliesReportText } = await import('../check/replies.js');
    const report = evaluateReplies(await gatherRepliesFacts(state.config));
    const json = { name: report.name, up: true, ok: report.ok, leak: report.leak, checks: report.checks };
    process.stdout.write((opts.json ? JSON.stringify(json, null, 2) : repliesReportText(report)) + '\n');
    return report.ok ? 0 : CHECK_FAILED;
  }
  // A cgroup-mode NAME has no namespace: its own probes (check/cgroup.ts), loaded only for it.
  const cgroupMode = state?.config.mode === 'cgroup';
  const live = cgroupMode || isLiveNetns(name);
  if (!state || state.status !== 'up' || isFromEarlierBoot(state) || !live) {
    if (opts.json) process.stdout.write(JSON.stringify({ name, up: false, ok: false, checks: [] }) + '\n');
    process.stderr.write(`nsroute: ${name} is not up; ${notUpHint(name, state, live)}\n`);
    return STATUS_NOT_UP;
  }
  if (cgroupMode) {
    const { evaluateCgroupCheck, gatherCgroupCheck } = await import('../check/cgroup.js');
    const r = evaluateCgroupCheck(await gatherCgroupCheck(state.config));
    const report = { name, ok: r.ok, leak: r.leak, checks: r.checks };
    process.stdout.write((opts.json ? JSON.stringify({ name, up: true, ...r }, null, 2) : reportText(report as Parameters<typeof reportText>[0])) + '\n');
    return r.ok ? 0 : CHECK_FAILED;
  }
  // With --dhcp and no --dns, the name servers are the lease's, written into the namespace's file.
  const config =
    state.config.dnsSource === 'dhcp'
      ? { ...state.config, dns: namespaceNameservers(name) }
      : state.config;
  const report = evaluate(await gatherCheckFacts(config, probeName));
  const json = { name: report.name, up: true, ok: report.ok, leak: report.leak, checks: report.checks };
  process.stdout.write((opts.json ? JSON.stringify(json, null, 2) : reportText(report)) + '\n');
  return report.ok ? 0 : CHECK_FAILED;
}
