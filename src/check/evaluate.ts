// `nsroute check`: what the gathered facts (check/gather.ts: command outputs and file texts,
// read from the kernel and from inside the namespace) say about a namespace. Pure, so unit
// tests feed it recorded outputs. Each check says whether it passed, whether traffic or
// lookups leave outside the namespace's configured path right now (`leak`), and one line why.
import { blockOf, cidrContains, isIPv4 } from '../net/addresses.js';
import { parseAddrs, parseRoutes, parseRules, type AddrFact } from '../net/iproute-json.js';
import { hex, HOST_MARK } from '../net/nft.js';
import { guardPrefs } from '../plan/guard.js';
import { parseNameservers } from '../net/resolv.js';
import type { NamespaceConfig } from '../plan/types.js';

// TEST-NET-2 and the IPv6 documentation prefix: `ip route get` answers for them without a
// packet being sent, and no real destination is ever routed differently from them.
import { checkPublish, type PublishCheck } from './publish.js';

export const PROBE_DST4 = '198.51.100.7';
export const PROBE_DST6 = '2001:db8::7';
// `.invalid` never exists (RFC 6761), so any name server answers it at once, without asking
// anyone upstream: an NXDOMAIN or a refusal proves the server was reached.
export const DEFAULT_PROBE_NAME = 'nsroute-check.invalid';
// plan.ts: the unreachable fallback route of every uplink table.
export const FALLBACK_METRIC = 4278190080;
// How the files nsroute writes into /etc/netns/NAME begin (net/resolv.ts).
export const WRITTEN_BY = '# Written by nsroute';
export const NETNS_FILES = ['resolv.conf', 'gai.conf', 'nsswitch.conf'] as const;
export type NetnsFile = (typeof NETNS_FILES)[number];
const REQUIRED_FILES: readonly NetnsFile[] = ['resolv.conf', 'gai.conf'];

// One command's result, as run() reports it with allowFail (stdout without its final newline).
export interface CommandOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
}

// A file as the namespace sees it (`ip netns exec NAME cat /etc/FILE`), byte for byte;
// text is absent when it could not be read, error then says why.
export interface FileView {
  text?: string;
  error?: string;
}

export interface CheckFacts {
  config: NamespaceConfig;
  probeName: string; // the name the DNS probe asks for
  nsRoute: CommandOutput; // ip -n NAME -j route get PROBE_DST4
  hostRoute: CommandOutput; // ip -j route get PROBE_DST4 from NSADDR iif HOSTIFACE mark M (nat mode)
  hostRouteUnmarked?: CommandOutput; // the same without the mark (nat mode): must find no route
  hostAddrs: CommandOutput; // ip -j -4 addr show (the source masquerade picks)
  uplinkTable?: CommandOutput; // ip -j -N route show table T (with an uplink)
  rules?: CommandOutput; // ip -j -N rule show (with an uplink)
  nft: CommandOutput; // nft -j list table inet nsroute
  dnsProbe: CommandOutput; // the DNS probe script's JSON (dnsProbeScript)
  nsAddrs6: CommandOutput; // ip -n NAME -6 -j addr show
  nsRoute6: CommandOutput; // ip -n NAME -6 -j route get PROBE_DST6
  hostRoute6?: CommandOutput; // ip -6 -j route get PROBE_DST6 from NSADDR6 iif HOSTIFACE mark M (--ipv6 nat)
  hostRoute6Unmarked?: CommandOutput; // the same without the mark: must find no route
  netnsFiles: Record<NetnsFile, string | undefined>; // /etc/netns/NAME/FILE, undefined when absent
  views: Record<NetnsFile, FileView>; // /etc/FILE as the namespace sees it
  forwardHolesMissing?: string[]; // other tools' forward chains that drop the traffic, unopened
  // With published ports (check/publish.ts): the host's connections to them, and what listens inside.
  publishProbe?: CommandOutput;
  nsListeners?: CommandOutput;
}

export type CheckId = 'route' | 'nat' | 'dns' | 'nsswitch' | 'ipv6' | 'files' | 'firewall' | 'publish';

interface CheckBase {
  id: CheckId;
  ok: boolean;
  leak: boolean; // traffic or lookups leave outside the configured path now
  detail: string; // one line: what was seen, or what is wrong and what to do
}

export interface Hop {
  dev: string | null;
  gateway: string | null;
  source: string | null;
}

export interface RouteCheck extends CheckBase {
  id: 'route';
  inside: Hop; // the namespace's own route
  host: Hop & { table: number | null }; // what the host does with the namespace's packets; source = what the far side sees
  killSwitch: { table: number; uplinkRoute: boolean; fallback: boolean; rule: boolean } | null;
  // nat mode: the namespace's packets carry nsroute's mark now (nft table intact), and, with an
  // uplink, a packet without it finds no route (the fail-closed rule, plan/guard.ts). null in
  // LAN modes (both) and without an uplink (failClosed: host routing is their path).
  marked: boolean | null;
  failClosed: boolean | null;
}

export interface NatCheck extends CheckBase {
  id: 'nat';
  table: boolean;
  missing: string[]; // what the table lacks, e.g. "ns_ifaces nsr-slow"
}

export interface DnsServerResult {
  server: string;
  answered: boolean;
  result: string; // "answer" (addresses), or the resolver's code: ENOTFOUND, EREFUSED, ETIMEOUT...
  addresses?: string[]; // the A records, when result is "answer"
}

export interface DnsCheck extends CheckBase {
  id: 'dns';
  expected: string[];
  nameservers: string[] | null; // the namespace's view of /etc/resolv.conf
  name: string;
  servers: DnsServerResult[];
}

export interface NsswitchCheck extends CheckBase {
  id: 'nsswitch';
  own: boolean; // /etc/netns/NAME/nsswitch.conf exists
  hosts: string | null; // the hosts: line the namespace sees
}

export interface Ipv6Check extends CheckBase {
  id: 'ipv6';
  mode: 'off' | 'nat';
  addresses: string[]; // IPv6 addresses inside, other than ::1 and link-local
  inside: { dev: string | null; gateway: string | null; error: string | null };
  host: { dev: string | null; gateway: string | null; error: string | null } | null;
}

export interface FileResult {
  file: NetnsFile;
  present: boolean; // in /etc/netns/NAME
  ours: boolean; // starts with WRITTEN_BY
  mounted: boolean; // the namespace's /etc/FILE is byte-identical to it
}

export interface FilesCheck extends CheckBase {
  id: 'files';
  files: FileResult[];
}

export interface FirewallCheck extends CheckBase {
  id: 'firewall';
  blocking: string[];
}

export type CheckResult = RouteCheck | NatCheck | DnsCheck | NsswitchCheck | Ipv6Check | FilesCheck | FirewallCheck | PublishCheck;

export interface CheckReport {
  name: string;
  ok: boolean;
  leak: boolean;
  checks: CheckResult[];
}

// --- small parsers -------------------------------------------------------------------------

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() || 'no output';
}

function stderrOf(o: CommandOutput): string {
  return firstLine(o.stderr || o.stdout).replace(/^RTNETLINK answers: /, '');
}

function parseJson(text: string): unknown {
  try {
    return text.trim() === '' ? [] : JSON.parse(text);
  } catch {
    return undefined;
  }
}

interface RouteGet {
  dev: string | null;
  gateway: string | null;
  prefsrc: string | null;
  table: number | null;
  type: string;
}

// `ip -j route get`: the one route the kernel picks; undefined when it found none.
export function parseRouteLookup(o: CommandOutput | undefined): RouteGet | undefined {
  if (!o || o.exitCode !== 0) return undefined;
  const json = parseJson(o.stdout);
  const r = Array.isArray(json) ? (json[0] as Record<string, unknown> | undefined) : undefined;
  if (!r || typeof r !== 'object') return undefined;
  const str = (v: unknown) => (typeof v === 'string' ? v : null);
  const table = r.table === undefined ? null : Number(r.table);
  return {
    dev: str(r.dev),
    gateway: str(r.gateway),
    prefsrc: str(r.prefsrc),
    table: table === null || Number.isNaN(table) ? null : table,
    type: typeof r.type === 'string' ? r.type : 'unicast',
  };
}

// The address masquerade puts on packets leaving by `dev`: the route's preferred source, else
// the device's primary address on the gateway's network, else its first IPv4 address.
export function masqueradeSource(route: RouteGet, addrs: readonly AddrFact[]): string | null {
  if (route.prefsrc) return route.prefsrc;
  const onDev = addrs.filter((a) => a.family === 4 && a.dev === route.dev);
  const gw = route.gateway;
  const sameNet = gw && isIPv4(gw) ? onDev.find((a) => cidrContains(blockOf(a.local, a.prefix), gw)) : undefined;
  return (sameNet ?? onDev[0])?.local ?? null;
}

interface NftTable {
  sets: Map<string, string[]>;
  maps: Map<string, Map<string, number>>;
  rules: { chain: string; text: string }[];
}

// nft -j's set element forms: "x", {"prefix": {"addr", "len"}}, {"range": [a, b]}, {"elem": {"val": ...}}.
function nftElement(e: unknown): string {
  if (typeof e === 'string' || typeof e === 'number') return String(e);
  if (e && typeof e === 'object') {
    const o = e as Record<string, unknown>;
    if (o.prefix && typeof o.prefix === 'object') {
      const p = o.prefix as { addr?: unknown; len?: unknown };
      return `${String(p.addr)}/${String(p.len)}`;
    }
    if (Array.isArray(o.range)) return o.range.map(nftElement).join('-');
    if (o.elem && typeof o.elem === 'object') return nftElement((o.elem as { val?: unknown }).val);
  }
  return JSON.stringify(e);
}

// An address without a length in an interval set is a single host.
function asCidr(text: string): string {
  return text.includes('/') || text.includes('-') ? text : `${text}/${text.includes(':') ? 128 : 32}`;
}

export function parseNftTable(o: CommandOutput): NftTable | undefined {
  if (o.exitCode !== 0) return undefined;
  const json = parseJson(o.stdout) as { nftables?: unknown[] } | undefined;
  if (!json || !Array.isArray(json.nftables)) return undefined;
  const out: NftTable = { sets: new Map(), maps: new Map(), rules: [] };
  let sawTable = false;
  for (const item of json.nftables) {
    if (!item || typeof item !== 'object') continue;
    const o2 = item as Record<string, Record<string, unknown> | undefined>;
    if (o2.table) sawTable = true;
    const set = o2.set;
    if (set && typeof set.name === 'string') {
      out.sets.set(set.name, Array.isArray(set.elem) ? set.elem.map(nftElement) : []);
    }
    const map = o2.map;
    if (map && typeof map.name === 'string') {
      const m = new Map<string, number>();
      for (const pair of Array.isArray(map.elem) ? map.elem : []) {
        if (Array.isArray(pair) && pair.length === 2) m.set(nftElement(pair[0]), Number(pair[1]));
      }
      out.maps.set(map.name, m);
    }
    const rule = o2.rule;
    if (rule && typeof rule.chain === 'string') out.rules.push({ chain: rule.chain, text: JSON.stringify(rule.expr ?? []) });
  }
  return sawTable ? out : undefined;
}

// The probe script's output: [{server, result, addresses?}] in the order asked.
export function parseDnsProbe(o: CommandOutput, servers: readonly string[]): DnsServerResult[] {
  const json = o.exitCode === 0 ? parseJson(o.stdout) : undefined;
  const byServer = new Map<string, { result: string; addresses?: string[] }>();
  if (Array.isArray(json)) {
    for (const r of json as { server?: unknown; result?: unknown; addresses?: unknown }[]) {
      if (!r || typeof r.server !== 'string') continue;
      const addresses = Array.isArray(r.addresses) ? r.addresses.map(String) : undefined;
      byServer.set(r.server, { result: String(r.result), ...(addresses ? { addresses } : {}) });
    }
  }
  const failed = { result: `probe failed: ${stderrOf(o)}` };
  return servers.map((server) => {
    const r = byServer.get(server) ?? failed;
    return { server, answered: ANSWERED.has(r.result), ...r };
  });
}

// Any reply at all proves the server was reached by the namespace's route: addresses, "no
// such name", "no data", a refusal, a server failure, a malformed reply. A timeout, an ICMP
// port unreachable (ECONNREFUSED) or a cancelled query do not.
const ANSWERED = new Set(['answer', 'ENOTFOUND', 'ENODATA', 'EREFUSED', 'ESERVFAIL', 'EFORMERR', 'ENOTIMP', 'EBADRESP']);

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip === '0.0.0.0' || ip === '::';
}

function isLinkLocal6(ip: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(ip);
}

// The hosts: line's sources, without their [STATUS=action] items.
export function hostsSources(text: string): { line: string | null; sources: string[] } {
  const line = text.split('\n').find((l) => /^\s*hosts\s*:/.test(l));
  if (line === undefined) return { line: null, sources: [] };
  const rest = line.replace(/^\s*hosts\s*:/, '').replace(/#.*$/, '');
  const sources = rest.replace(/\[[^\]]*\]/g, ' ').split(/\s+/).filter(Boolean);
  return { line: line.trim(), sources };
}

// Sources that ask a daemon on the host over a unix socket, which crosses network
// namespaces: lookups would leave by the host's own routes and name servers (net/resolv.ts).
const HOST_DAEMON_SOURCE = /^(resolve|mdns.*|mymachines|wins)$/;

function ipv6Fields(config: NamespaceConfig): { mode: 'off' | 'nat'; nsAddress6?: string } {
  const c = config as { ipv6?: string; nsAddress6?: string };
  return { mode: c.ipv6 === 'nat' ? 'nat' : 'off', ...(typeof c.nsAddress6 === 'string' ? { nsAddress6: c.nsAddress6 } : {}) };
}

// --- the checks ----------------------------------------------------------------------------

// bridge / macvlan: the namespace is its own host on the LAN; its traffic goes from its own
// address to its own gateway (static, or the lease's router), the host is not on the path.
function checkLanRoute(f: CheckFacts): RouteCheck {
  const c = f.config;
  const inside = parseRouteLookup(f.nsRoute);
  const insideHop: Hop = { dev: inside?.dev ?? null, gateway: inside?.gateway ?? null, source: inside?.prefsrc ?? null };
  const problems: string[] = [];
  let leak = false;
  if (!inside) problems.push(`inside the namespace ${PROBE_DST4} has no route (${stderrOf(f.nsRoute)})${c.lan?.dhcp ? '; no DHCP lease?' : ''}`);
  else {
    if (inside.dev !== c.nsIface) {
      leak = true;
      problems.push(`inside the namespace traffic goes dev ${inside.dev ?? '?'}, not ${c.nsIface}`);
    }
    if (c.lan?.gateway && inside.gateway !== c.lan.gateway) problems.push(`inside the namespace traffic goes via ${inside.gateway ?? '(none)'}, not the LAN's router ${c.lan.gateway}`);
    if (c.lan?.address && inside.prefsrc !== c.lan.address.split('/')[0]) problems.push(`the namespace's source address is ${inside.prefsrc ?? '?'}, not ${c.lan.address.split('/')[0]}`);
  }
  const ok = problems.length === 0;
  const on = c.lan?.bridge ? `bridge ${c.lan.bridge}` : `macvlan on ${c.lan?.parent}`;
  const detail = ok ? `via ${insideHop.gateway ?? '?'} dev ${c.nsIface} (${on}), source ${insideHop.source ?? '?'} (its own LAN address)` : problems.join('; ');
  return { id: 'route', ok, leak, detail, inside: insideHop, host: { dev: null, gateway: null, source: insideHop.source, table: null }, killSwitch: null, marked: null, failClosed: null };
}

export function checkRoute(f: CheckFacts): RouteCheck {
  if (f.config.mode !== 'nat') return checkLanRoute(f);
  const c = f.config;
  const u = c.uplink;
  const problems: string[] = [];
  let leak = false;

  const inside = parseRouteLookup(f.nsRoute);
  const insideHop: Hop = { dev: inside?.dev ?? null, gateway: inside?.gateway ?? null, source: inside?.prefsrc ?? null };
  if (!inside) {
    problems.push(`inside the namespace ${PROBE_DST4} has no route (${stderrOf(f.nsRoute)}); its default route via ${c.hostAddress} is gone`);
  } else if (inside.dev !== c.nsIface || inside.gateway !== c.hostAddress || inside.prefsrc !== c.nsAddress) {
    const seen = `dev ${inside.dev ?? '?'}${inside.gateway ? ` via ${inside.gateway}` : ''} src ${inside.prefsrc ?? '?'}`;
    if (inside.dev !== c.nsIface) leak = true;
    problems.push(`inside the namespace traffic goes ${seen}, not dev ${c.nsIface} via ${c.hostAddress} src ${c.nsAddress}`);
  }

  // Which lookup the kernel really does: with nsroute's mark only while its nft table gives it.
  const t = parseNftTable(f.nft);
  const marked = t !== undefined && t.maps.get('uplink_mark')?.get(c.hostIface) === (u?.mark ?? HOST_MARK) && t.rules.some((r) => r.text.includes('"@uplink_mark"'));
  // Only namespaces with an uplink are guarded in IPv4 (plan/guard.ts: rp_filter).
  const failClosed = u ? noRoute(f.hostRouteUnmarked) : null;
  const blocked = !marked && failClosed === true;
  const lookup = marked ? f.hostRoute : (f.hostRouteUnmarked ?? f.hostRoute);
  const host = blocked ? undefined : parseRouteLookup(lookup);
  const addrs = parseAddrs(parseJson(f.hostAddrs.stdout) ?? []);
  const hostHop = {
    dev: host?.dev ?? null,
    gateway: host?.gateway ?? null,
    source: host ? masqueradeSource(host, addrs) : null,
    table: host?.table ?? null,
  };
  if (blocked) {
    problems.push(`the namespace's packets get no mark from nsroute's firewall table (flushed or changed by another tool): blocked by the fail-closed rule (kill switch), nothing leaks; \`nsroute up ${c.name}\` or \`nsroute gc\` restores the table`);
  } else if (!marked) {
    if (u) leak = true;
    problems.push(
      `the namespace's packets get no mark from nsroute's firewall table and no fail-closed rule stops them: they leave ${host ? `${host.gateway ? `via ${host.gateway} ` : ''}dev ${host.dev ?? '?'}` : 'by the host\'s routes'} unmasqueraded; \`nsroute up ${c.name}\` or \`nsroute gc\` restores both`,
    );
  } else if (failClosed === false) {
    const unmarked = parseRouteLookup(f.hostRouteUnmarked);
    problems.push(
      `the fail-closed rule (pref ${guardPrefs().block} from ${c.subnet}'s block unreachable) is missing: if the firewall were flushed, traffic would leave ${unmarked?.dev ? `dev ${unmarked.dev}` : 'by the host\'s routes'}; \`nsroute up ${c.name}\` or \`nsroute gc\` puts it back`,
    );
  }

  let killSwitch: RouteCheck['killSwitch'] = null;
  if (u) {
    const table = parseRoutes(parseJson(f.uplinkTable?.stdout ?? '') ?? []);
    const isDefault = (dst: string) => dst === 'default' || dst === '0.0.0.0/0';
    const uplinkRoute = table.some((r) => isDefault(r.dst) && r.type === 'unicast' && r.dev === u.dev && (!u.via || r.gateway === u.via));
    const fallback = table.some((r) => isDefault(r.dst) && r.type === 'unreachable' && r.metric === FALLBACK_METRIC);
    const rule = parseRules(parseJson(f.rules?.stdout ?? '') ?? []).some((r) => r.fwmark === u.mark && r.table === u.table && r.priority === u.pref);
    killSwitch = { table: u.table, uplinkRoute, fallback, rule };
    const want = `${u.via ? `via ${u.via} ` : ''}dev ${u.dev}`;
    if (!rule) problems.push(`the rule fwmark ${hex(u.mark)} lookup ${u.table} pref ${u.pref} is missing${failClosed ? ': traffic is blocked (kill switch), nothing leaks' : ": the namespace's traffic follows the host's routes"}`);
    if (blocked) {
      // Said above: the lookup never gets as far as the uplink's table.
    } else if (!host) {
      if (!uplinkRoute && fallback) {
        problems.push(`uplink ${u.dev} has no route in table ${u.table}: traffic is blocked (kill switch), nothing leaks; once ${u.dev} is up, \`nsroute up ${c.name}\` or \`nsroute gc\` puts the route back`);
      } else {
        problems.push(`the host has no route for the namespace's traffic (${stderrOf(lookup)}); expected ${want}`);
      }
    } else {
      if (host.dev !== u.dev || (u.via !== undefined && host.gateway !== u.via)) {
        leak = true;
        problems.push(`the namespace's traffic leaves ${host.gateway ? `via ${host.gateway} ` : ''}dev ${host.dev ?? '?'}, not the uplink ${want}`);
      }
      if (!uplinkRoute) problems.push(`table ${u.table} has no default route ${want}`);
    }
    if (!fallback) {
      problems.push(`table ${u.table} lacks its unreachable fallback: if uplink ${u.dev} goes down, traffic ${failClosed ? 'is blocked by the fail-closed rule' : "falls back to the host's default route"}`);
    }
  } else if (!host && !blocked) {
    problems.push(`the host has no route for the namespace's traffic (${stderrOf(lookup)})`);
  }

  // A blocked kill switch is the first thing to say: it explains the failed lookup.
  problems.sort((a, b) => Number(b.includes('kill switch')) - Number(a.includes('kill switch')));
  const ok = problems.length === 0;
  const via = hostHop.gateway ? `via ${hostHop.gateway} ` : '';
  const detail = ok ? `${via}dev ${hostHop.dev}, source ${hostHop.source ?? 'unknown'}${u ? '' : ' (host routing)'}` : problems.join('; ');
  return { id: 'route', ok, leak, detail, inside: insideHop, host: hostHop, killSwitch, marked, failClosed };
}

// A route lookup that found no route: what the fail-closed rule answers ("Network is
// unreachable"), or a route of a blocking type.
function noRoute(o: CommandOutput | undefined): boolean {
  if (!o) return false;
  if (o.exitCode !== 0) return /unreachable|prohibited/i.test(o.stderr);
  const r = parseRouteLookup(o);
  return r !== undefined && ['unreachable', 'prohibit', 'blackhole'].includes(r.type);
}

export function checkNat(f: CheckFacts): NatCheck {
  const c = f.config;
  const u = c.uplink;
  if (c.mode !== 'nat') return { id: 'nat', ok: true, leak: false, detail: `no NAT in ${c.mode} mode: the far side sees the namespace's own address`, table: false, missing: [] } as NatCheck;
  const t = parseNftTable(f.nft);
  if (!t) {
    const why = f.nft.exitCode === 0 ? 'unreadable output' : stderrOf(f.nft);
    return {
      id: 'nat',
      ok: false,
      // Without the table nothing is marked or masqueraded: the fail-closed rule blocks the
      // traffic (plan/guard.ts); without that too, packets follow the host's main table, with
      // the namespace's private source address.
      leak: u !== undefined && !noRoute(f.hostRouteUnmarked),
      detail: `table inet nsroute is missing (${why}): the firewall was flushed or reloaded by another tool${noRoute(f.hostRouteUnmarked) ? '; traffic is blocked until then, nothing leaks' : ''}; \`nsroute up ${c.name}\` (or an exec on it, or \`nsroute gc\`) restores it`,
      table: false,
      missing: ['table inet nsroute'],
    };
  }
  const missing: string[] = [];
  if (!(t.sets.get('ns_ifaces') ?? []).includes(c.hostIface)) missing.push(`ns_ifaces ${c.hostIface}`);
  if (!(t.sets.get('ns_nets4') ?? []).map(asCidr).includes(c.subnet)) missing.push(`ns_nets4 ${c.subnet}`);
  if (!t.rules.some((r) => r.text.includes('"@ns_nets4"') && r.text.includes('masquerade'))) missing.push('masquerade rule');
  let leak = false;
  // Namespaces without --via get HOST_MARK: it lets them past the fail-closed rule.
  const want = u?.mark ?? HOST_MARK;
  const leaks = u !== undefined && !noRoute(f.hostRouteUnmarked);
  const mark = t.maps.get('uplink_mark')?.get(c.hostIface);
  if (mark !== want) {
    missing.push(`uplink_mark ${c.hostIface} : ${hex(want)}${mark === undefined ? '' : ` (is ${hex(mark)})`}`);
    leak ||= leaks;
  }
  if (!t.rules.some((r) => r.text.includes('"@uplink_mark"'))) {
    missing.push('mark rule');
    leak ||= leaks;
  }
  const ok = missing.length === 0;
  const detail = ok
    ? `masquerade of ${c.subnet} from ${c.hostIface}, mark ${hex(want)}${u ? '' : ' (host routing)'}`
    : `table inet nsroute lacks ${missing.join(', ')}: it was changed by another tool; \`nsroute up ${c.name}\` or \`nsroute gc\` renders it again`;
  return { id: 'nat', ok, leak, detail, table: true, missing };
}

export function checkDns(f: CheckFacts): DnsCheck {
  const expected = f.config.dns.slice(0, 3); // renderResolvConf writes at most 3 (glibc's limit)
  const view = f.views['resolv.conf'];
  const nameservers = view.text === undefined ? null : parseNameservers(view.text);
  const servers = parseDnsProbe(f.dnsProbe, expected);
  const problems: string[] = [];
  let leak = false;
  if (nameservers === null) {
    problems.push(`the namespace's /etc/resolv.conf cannot be read (${view.error ?? 'unknown error'})`);
  } else {
    const loop = nameservers.filter(isLoopback);
    if (loop.length > 0) problems.push(`loopback name server ${loop.join(', ')} in the namespace's resolv.conf: nothing answers on the namespace's own loopback`);
    if (nameservers.join(',') !== expected.join(',')) {
      const foreign = nameservers.filter((s) => !expected.includes(s) && !isLoopback(s));
      if (foreign.length > 0) leak = true;
      problems.push(`the namespace asks ${nameservers.join(', ') || 'no name server'}, not ${expected.join(', ')}`);
    }
  }
  const silent = servers.filter((s) => !s.answered);
  if (silent.length > 0) {
    problems.push(`${silent.map((s) => `${s.server} (${s.result})`).join(', ')} did not answer through the namespace's route`);
  }
  const ok = problems.length === 0;
  const said = (s: DnsServerResult) => (s.addresses ? s.addresses.join(' ') || 'no address' : s.result);
  const detail = ok ? `${servers.map((s) => `${s.server} answered (${said(s)})`).join(', ')}` : problems.join('; ');
  return { id: 'dns', ok, leak, detail, expected, nameservers, name: f.probeName, servers };
}

export function checkNsswitch(f: CheckFacts): NsswitchCheck {
  const own = f.netnsFiles['nsswitch.conf'] !== undefined;
  const view = f.views['nsswitch.conf'];
  if (view.text === undefined) {
    // Without an nsswitch.conf glibc uses its built-in default (dns, files): nothing escapes.
    const ok = !own;
    const detail = ok ? 'no /etc/nsswitch.conf: glibc asks dns and files' : `the namespace's /etc/nsswitch.conf cannot be read (${view.error ?? 'unknown error'})`;
    return { id: 'nsswitch', ok, leak: false, detail, own, hosts: null };
  }
  const { line, sources } = hostsSources(view.text);
  const daemons = sources.filter((s) => HOST_DAEMON_SOURCE.test(s));
  const problems: string[] = [];
  let leak = false;
  if (own) {
    if (daemons.length > 0) {
      leak = true;
      problems.push(`hosts: asks ${daemons.join(', ')}, daemons on the host: those lookups leave by the host's routes`);
    }
    if (line !== null && !sources.includes('dns')) problems.push('hosts: lacks dns: names are not looked up by the namespace\'s name servers');
  } else if (sources.includes('resolve')) {
    leak = true;
    problems.push('the namespace uses the host\'s nsswitch.conf, whose hosts: asks resolve: lookups escape to systemd-resolved on the host');
  }
  const ok = problems.length === 0;
  const detail = ok ? `${line?.replace(/\s+/g, ' ') ?? 'no hosts: line (glibc asks dns and files)'}${own ? '' : ' (the host\'s file)'}` : problems.join('; ');
  return { id: 'nsswitch', ok, leak, detail, own, hosts: line };
}

export function checkIpv6(f: CheckFacts): Ipv6Check {
  const c = f.config;
  const { mode, nsAddress6 } = ipv6Fields(c);
  const addrs = parseAddrs(parseJson(f.nsAddrs6.stdout) ?? []).filter((a) => a.family === 6);
  const addresses = addrs.filter((a) => a.local !== '::1' && !isLinkLocal6(a.local)).map((a) => a.local);
  const inside = parseRouteLookup(f.nsRoute6);
  const insideOut = { dev: inside?.dev ?? null, gateway: inside?.gateway ?? null, error: inside ? null : stderrOf(f.nsRoute6) };
  if (mode === 'off') {
    const problems: string[] = [];
    if (addresses.length > 0) problems.push(`IPv6 address ${addresses.join(', ')} inside, though IPv6 is off`);
    if (inside) problems.push(`IPv6 can leave: ${PROBE_DST6} goes dev ${inside.dev ?? '?'}${inside.gateway ? ` via ${inside.gateway}` : ''}`);
    const ok = problems.length === 0;
    const detail = ok ? 'IPv6 cannot leave; programs fall back to IPv4 at once' : problems.join('; ');
    return { id: 'ipv6', ok, leak: !ok, detail, mode, addresses, inside: insideOut, host: null };
  }
  const u = c.uplink;
  const host = parseRouteLookup(f.hostRoute6);
  const hostOut = { dev: host?.dev ?? null, gateway: host?.gateway ?? null, error: host ? null : f.hostRoute6 ? stderrOf(f.hostRoute6) : 'not looked up' };
  const problems: string[] = [];
  let leak = false;
  if (!nsAddress6) problems.push('IPv6 is nat but the namespace has no IPv6 address on record');
  if (!inside || inside.dev !== c.nsIface) {
    problems.push(inside ? `inside, IPv6 goes dev ${inside.dev ?? '?'}, not ${c.nsIface}` : `inside the namespace IPv6 has no route (${insideOut.error})`);
    if (inside) leak = true;
  }
  if (!host) {
    problems.push(`the host has no IPv6 route for the namespace's traffic (${hostOut.error})${u ? ': blocked, nothing leaks' : ''}`);
  } else if (u && host.dev !== u.dev) {
    leak = true;
    problems.push(`the namespace's IPv6 traffic leaves dev ${host.dev ?? '?'}, not the uplink ${u.dev}`);
  }
  if (f.hostRoute6Unmarked && !noRoute(f.hostRoute6Unmarked)) {
    const unmarked = parseRouteLookup(f.hostRoute6Unmarked);
    problems.push(`the IPv6 fail-closed rule is missing: without nsroute's mark the namespace's IPv6 would leave ${unmarked?.dev ? `dev ${unmarked.dev}` : "by the host's routes"}; \`nsroute up ${c.name}\` or \`nsroute gc\` puts it back`);
  }
  const ok = problems.length === 0;
  const detail = ok ? `IPv6 leaves ${host?.gateway ? `via ${host.gateway} ` : ''}dev ${host?.dev} (nat)` : problems.join('; ');
  return { id: 'ipv6', ok, leak, detail, mode, addresses, inside: insideOut, host: hostOut };
}

export function checkFiles(f: CheckFacts): FilesCheck {
  const dir = `/etc/netns/${f.config.name}`;
  const files: FileResult[] = [];
  const problems: string[] = [];
  for (const file of NETNS_FILES) {
    const text = f.netnsFiles[file];
    const required = REQUIRED_FILES.includes(file);
    if (text === undefined) {
      if (required) {
        files.push({ file, present: false, ours: false, mounted: false });
        problems.push(`${dir}/${file} is missing`);
      }
      continue;
    }
    const ours = text.startsWith(WRITTEN_BY);
    const view = f.views[file];
    const mounted = view.text !== undefined && view.text === text;
    files.push({ file, present: true, ours, mounted });
    if (!ours) problems.push(`${dir}/${file} was not written by nsroute (replaced by another tool?)`);
    if (!mounted) {
      problems.push(
        view.text === undefined
          ? `the namespace cannot read /etc/${file} (${view.error ?? 'unknown error'})`
          : `the namespace's /etc/${file} differs from ${dir}/${file} (the bind mount is lost or covered)`,
      );
    }
  }
  const ok = problems.length === 0;
  const detail = ok ? `${files.map((x) => x.file).join(', ')} in place` : `${problems.join('; ')}; \`nsroute down\` and \`up\` again rewrites them`;
  return { id: 'files', ok, leak: false, detail, files };
}

// Another tool's forward chain (iptables FORWARD policy DROP, a native nft chain) that would
// drop the namespace's traffic and has lost nsroute's holes (a firewall reload): broken, not
// leaking.
export function checkFirewall(f: CheckFacts): FirewallCheck {
  const blocking = f.forwardHolesMissing ?? [];
  const ok = blocking.length === 0;
  const detail = ok
    ? "no other firewall drops the namespace's forwarded traffic"
    : `${blocking.join(', ')} drop${blocking.length === 1 ? 's' : ''} the namespace's traffic (nsroute's holes are gone, a firewall reload?); \`nsroute up ${f.config.name}\` or \`nsroute gc\` puts them back`;
  return { id: 'firewall', ok, leak: false, detail, blocking };
}

export function evaluate(f: CheckFacts): CheckReport {
  const checks: CheckResult[] = [checkRoute(f), checkNat(f), checkDns(f), checkNsswitch(f), checkIpv6(f), checkFiles(f), checkFirewall(f)];
  if (f.config.publish && f.config.publish.length > 0) checks.push(checkPublish(f.config, f.publishProbe, f.nsListeners));
  return { name: f.config.name, ok: checks.every((c) => c.ok), leak: checks.some((c) => c.leak), checks };
}

// One line per check, then a summary.
export function reportText(r: CheckReport): string {
  const lines = r.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.id}: ${c.detail}`);
  const failed = r.checks.filter((c) => !c.ok);
  if (failed.length === 0) lines.push(`${r.name}: all ${r.checks.length} checks passed`);
  else {
    const leaks = failed.filter((c) => c.leak).map((c) => c.id);
    const tail = leaks.length > 0 ? `; leaking: ${leaks.join(', ')}` : '; nothing leaks';
    lines.push(`${r.name}: ${failed.length} of ${r.checks.length} checks failed (${failed.map((c) => c.id).join(', ')})${tail}`);
  }
  return lines.join('\n');
}

// Run with `node -e SCRIPT NAME SERVER...` inside the namespace: asks every server at once,
// one try each, and prints [{server, result}] (result "answer" or the resolver's error code).
export const DNS_PROBE_SCRIPT = [
  "const { Resolver } = require('node:dns').promises;",
  'const [name, ...servers] = process.argv.slice(1);',
  'Promise.all(servers.map(async (server) => {',
  '  const r = new Resolver({ timeout: 2000, tries: 1 });',
  '  try { r.setServers([server]); return { server, result: "answer", addresses: await r.resolve4(name) }; }',
  '  catch (e) { return { server, result: (e && e.code) || String(e) }; }',
  '})).then((x) => process.stdout.write(JSON.stringify(x) + "\\n"));',
].join('\n');
