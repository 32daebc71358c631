import type { NamespaceState } from '../state/store.js';
import { liveHolders } from '../apply/lifecycle.js';

// The documented JSON shape of one namespace (README "JSON output"). Only live holders.
export function statusJson(st: NamespaceState) {
  const c = st.config;
  return {
    name: st.name,
    up: st.status === 'up',
    status: st.status,
    persistent: st.persistent,
    mode: c.mode,
    holders: liveHolders(st).map((h) => ({ pid: h.pid, startTime: h.startTime, command: h.command, user: h.user, since: h.since })),
    hostInterface: c.hostIface,
    namespaceInterface: c.nsIface,
    subnet: c.subnet,
    hostAddress: c.hostAddress,
    namespaceAddress: c.nsAddress,
    gateway: c.uplink?.via ?? null,
    dev: c.uplink?.dev ?? null,
    table: c.uplink?.table ?? null,
    dns: c.dns,
    dnsSource: c.dnsSource,
    createdAt: st.createdAt,
  };
}

export type StatusJson = ReturnType<typeof statusJson>;

export function statusText(s: StatusJson): string {
  const route = s.gateway ? `via ${s.gateway} dev ${s.dev} (table ${s.table})` : s.dev ? `dev ${s.dev} (table ${s.table})` : 'host routing';
  const lines = [
    `${s.name}: ${s.status}, ${s.persistent ? 'persistent' : 'ephemeral'}, ${s.mode}`,
    `  link:    ${s.hostInterface} ${s.hostAddress} <-> ${s.namespaceInterface} ${s.namespaceAddress} (${s.subnet})`,
    `  route:   ${route}`,
    `  dns:     ${s.dns.join(', ')} (${s.dnsSource})`,
    `  holders: ${s.holders.length === 0 ? 'none' : s.holders.map((h) => `${h.pid} ${h.user}: ${h.command.join(' ')}`).join('\n           ')}`,
  ];
  return lines.join('\n');
}

export function listText(all: StatusJson[]): string {
  if (all.length === 0) return 'no nsroute namespaces';
  const rows = all.map((s) => [s.name, s.status, s.persistent ? 'persistent' : 'ephemeral', String(s.holders.length), s.namespaceAddress, s.gateway ?? s.dev ?? '-', s.dns.join(',')]);
  const head = ['NAME', 'STATUS', 'LIFETIME', 'HOLDERS', 'ADDRESS', 'GATEWAY', 'DNS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
