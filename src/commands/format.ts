import type { NamespaceState } from '../state/store.js';
import { publishSpec } from '../net/publish-spec.js';
import { liveHolders, type Condition, type NamespaceView } from '../apply/views.js';

// The documented JSON shape of one namespace (README "JSON output"). Only live holders.
export function statusJson(view: NamespaceView | NamespaceState) {
  const v: NamespaceView = 'condition' in view ? view : { state: view, condition: 'up', holders: liveHolders(view) };
  const st = v.state;
  const c = st.config;
  // --mode replies: a policy of the host, no namespace (its link fields are null).
  const replies = c.mode === 'replies' && c.uplink ? { dev: c.uplink.dev, via: c.uplink.via ?? null, table: c.uplink.table, mark: `0x${c.uplink.mark.toString(16).padStart(8, '0')}` } : null;
  const link = (v: string) => (replies ? null : v);
  return {
    name: st.name,
    up: v.condition !== 'interrupted',
    status: v.condition,
    needsGc: v.condition !== 'up',
    persistent: st.persistent,
    mode: c.mode,
    holders: v.holders.map((h) => ({ pid: h.pid, startTime: h.startTime, command: h.command, user: h.user, since: h.since, kind: h.kind ?? 'exec' })),
    hostInterface: link(c.hostIface),
    namespaceInterface: link(c.nsIface),
    subnet: link(c.subnet),
    hostAddress: link(c.hostAddress),
    namespaceAddress: link(v.lease?.address?.split('/')[0] ?? c.nsAddress),
    gateway: c.uplink?.via ?? c.lan?.gateway ?? null,
    dev: c.uplink?.dev ?? c.lan?.bridge ?? c.lan?.parent ?? null,
    // bridge / macvlan: the LAN side ("dhcp": the address comes from the lease)
    lan: c.lan ? { bridge: c.lan.bridge ?? null, takeover: c.lan.takeover ?? null, parent: c.lan.parent ?? null, address: c.lan.address ?? v.lease?.address ?? (c.lan.dhcp ? 'dhcp' : null) } : null,
    table: c.uplink?.table ?? null,
    // cgroup mode: NAME's cgroup, relative to the cgroup v2 mount (its members are the holders)
    cgroup: c.cgroup?.path ?? null,
    dns: v.lease && v.lease.dns.length > 0 ? v.lease.dns : c.dns,
    dnsSource: replies ? null : c.dnsSource,
    replies,
    createdAt: st.createdAt || null,
    // Published ports ([HOSTADDR:]HOSTPORT:PORT/PROTO) and bandwidth caps (bits/s, "Nbit"), net/publish.ts, net/rate.ts.
    publish: (c.publish ?? []).map(publishSpec),
    rateDown: c.rateDown ?? null,
    rateUp: c.rateUp ?? null,
  };
}

export type StatusJson = ReturnType<typeof statusJson>;

const CONDITION_HINT: Record<Exclude<Condition, 'up'>, string> = {
  stale: 'ephemeral and unused; the next nsroute command on it, or `nsroute gc`, removes it',
  interrupted: 'a create or teardown was interrupted; the next nsroute command on it, or `nsroute gc`, undoes it',
  untracked: 'its state under the run dir is missing (was it removed?); `nsroute gc` recovers it',
};

export function conditionHint(s: StatusJson): string | undefined {
  return s.status === 'up' ? undefined : `${s.name}: ${CONDITION_HINT[s.status]}`;
}

export function statusText(s: StatusJson): string {
  const route = s.lan
    ? `${s.lan.address ?? ''} on the LAN of ${s.dev}${s.lan.takeover ? ` (bridge over ${s.lan.takeover})` : ''}${s.gateway ? `, via ${s.gateway}` : ''}`
    : s.gateway
      ? `via ${s.gateway} dev ${s.dev} (table ${s.table})`
      : s.dev
        ? `dev ${s.dev} (table ${s.table})`
        : 'host routing';
  const holder = (h: StatusJson['holders'][number]) => `${h.pid} ${h.user}: ${h.command.join(' ')}${h.kind === 'process' ? (s.cgroup ? ' (member)' : ' (running inside)') : ''}`;
  if (s.replies) {
    const r = s.replies;
    const lines = [
      `${s.name}: ${s.status}, ${s.persistent ? 'persistent' : 'ephemeral'}, ${s.mode} (a policy of the host, no namespace)`,
      `  replies: connections arriving on ${r.dev} to this host are answered via ${r.via} dev ${r.dev} (ct mark ${r.mark}, table ${r.table})`,
    ];
    const hint = conditionHint(s);
    if (hint) lines.push(`  note:    ${hint}`);
    return lines.join('\n');
  }
  const lines = [
    `${s.name}: ${s.status}, ${s.persistent ? 'persistent' : 'ephemeral'}, ${s.mode}`,
    s.cgroup ? `  cgroup:  ${s.cgroup} (no namespace; members keep the host's network)` : s.lan ? `  link:    ${s.mode} ${s.namespaceInterface}` : `  link:    ${s.hostInterface} ${s.hostAddress} <-> ${s.namespaceInterface} ${s.namespaceAddress} (${s.subnet})`,
    `  route:   ${route}`,
    `  dns:     ${s.dns.join(', ')} (${s.dnsSource})`,
    ...(s.publish.length > 0 ? [`  publish: ${s.publish.join(', ')}`] : []),
    ...(s.rateDown || s.rateUp ? [`  caps:    down ${s.rateDown ?? 'none'}, up ${s.rateUp ?? 'none'}`] : []),
    `  holders: ${s.holders.length === 0 ? 'none' : s.holders.map(holder).join('\n           ')}`,
  ];
  const hint = conditionHint(s);
  if (hint) lines.push(`  note:    ${hint}`);
  return lines.join('\n');
}

export function listText(all: StatusJson[]): string {
  if (all.length === 0) return 'no nsroute namespaces';
  const rows = all.map((s) => [s.name, s.status, s.persistent ? 'persistent' : 'ephemeral', String(s.holders.length), s.lan?.address ?? (s.cgroup ? `cgroup ${s.cgroup}` : s.namespaceAddress ?? `(replies on ${s.dev})`), s.gateway ?? s.dev ?? '-', s.dns.join(',')]);
  const head = ['NAME', 'STATUS', 'LIFETIME', 'HOLDERS', 'ADDRESS', 'GATEWAY', 'DNS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
