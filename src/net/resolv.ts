import { isIPv4 } from './addresses.js';
import { UserError } from '../errors.js';

// Text of the per-namespace files that `ip netns exec` bind-mounts over /etc.

export function renderResolvConf(name: string, servers: readonly string[]): string {
  return [
    `# Written by nsroute for namespace ${name}; removed when the namespace goes.`,
    ...servers.slice(0, 3).map((s) => `nameserver ${s}`),
    // glibc tries servers in order; rotate off, short timeouts so a dead uplink fails fast.
    'options timeout:2 attempts:2',
    '',
  ].join('\n');
}

// The namespace has no IPv6 route unless configured: make getaddrinfo() put IPv4 first so
// programs do not try (and stall on) IPv6 addresses that cannot work here.
export function renderGaiConf(name: string): string {
  return [
    `# Written by nsroute for namespace ${name}: IPv4 first, the namespace has no IPv6 route.`,
    'precedence ::1/128 50',
    'precedence ::/0 40',
    'precedence 2002::/16 30',
    'precedence ::/96 20',
    'precedence ::ffff:0:0/96 100',
    '',
  ].join('\n');
}

export function parseNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && m[1]) out.push(m[1]);
  }
  return out;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip === '0.0.0.0';
}

export interface DnsSources {
  explicit: readonly string[];
  hostResolvConf?: string; // text of /etc/resolv.conf, if readable
  resolvedConf?: string; // text of systemd-resolved's upstream list, if readable
  gateway?: string; // --via, else the host's default gateway
}

export interface DnsChoice {
  servers: string[];
  source: 'option' | 'host' | 'systemd-resolved' | 'gateway';
}

// A loopback stub (systemd-resolved's 127.0.0.53, a local dnsmasq) does not exist inside the
// namespace, so it is never copied: use the real upstreams, else the gateway.
// IPv6 servers are dropped too: the namespace has no IPv6 route.
export function chooseDnsServers(src: DnsSources): DnsChoice {
  if (src.explicit.length > 0) return { servers: [...src.explicit], source: 'option' };
  const usable = (text?: string) => (text ? parseNameservers(text).filter((s) => isIPv4(s) && !isLoopback(s)) : []);
  const host = usable(src.hostResolvConf);
  if (host.length > 0) return { servers: host, source: 'host' };
  const resolved = usable(src.resolvedConf);
  if (resolved.length > 0) return { servers: resolved, source: 'systemd-resolved' };
  if (src.gateway) return { servers: [src.gateway], source: 'gateway' };
  throw new UserError(
    'no usable name server: the host only lists loopback or IPv6 resolvers and there is no gateway to ask',
    'pass --dns IP (or dns = ["IP"] in the profile)',
  );
}

// nsswitch.conf for the namespace: the host's, with the hosts line cut down to sources that
// resolve inside the namespace. `resolve` (systemd-resolved), `mdns*` (avahi) and
// `mymachines` ask daemons on the host over unix sockets, which cross network namespaces:
// lookups would leave by the host's routes and name servers. Their `[...]` actions go with
// them; `files` and `dns` are made sure of.
const HOST_DAEMON_SOURCES = /^(resolve|mdns.*|mymachines|wins)$/;

export function nsswitchHostsLine(line: string | undefined): string {
  const tokens = (line ?? '').replace(/^hosts:\s*/, '').split(/\s+/).filter(Boolean);
  const out: string[] = [];
  let dropping = false;
  for (const t of tokens) {
    if (t.startsWith('[')) {
      if (!dropping) out.push(t);
      continue;
    }
    dropping = HOST_DAEMON_SOURCES.test(t);
    if (!dropping) out.push(t);
  }
  while (out[0]?.startsWith('[')) out.shift();
  if (!out.includes('files')) out.unshift('files');
  if (!out.includes('dns')) out.push('dns');
  return `hosts:          ${out.join(' ')}`;
}

export function renderNsswitchConf(name: string, host: string | undefined): string {
  const lines = (host ?? '').split('\n');
  const hostsAt = lines.findIndex((l) => /^hosts:/.test(l.trim()));
  const body = lines.filter((l, i) => i !== hostsAt && !l.startsWith('# Written by nsroute'));
  while (body.length > 0 && body[body.length - 1]!.trim() === '') body.pop();
  return [
    `# Written by nsroute for namespace ${name}: the host's nsswitch.conf, with host name lookups kept inside the namespace.`,
    nsswitchHostsLine(hostsAt >= 0 ? lines[hostsAt]!.trim() : undefined),
    ...body,
    '',
  ].join('\n');
}
