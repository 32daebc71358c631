import type { PublishedPort } from './publish.js';

// The host's listening sockets, from `ss -H -l -n -p -t -u` (pure parsing): a published port
// takes every connection to its host port before the host's own server would see it, so
// publishing a port a host process listens on is refused, naming that process.
export interface Listener {
  proto: 'tcp' | 'udp';
  addr: string; // '*' for any address (0.0.0.0, *, [::])
  port: number;
  process?: string; // `"sshd",pid=812` as ss prints it
}

export function parseListeners(ssText: string): Listener[] {
  const out: Listener[] = [];
  for (const line of ssText.split('\n')) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 5) continue;
    const proto = cols[0];
    if (proto !== 'tcp' && proto !== 'udp') continue;
    const local = cols[4]!;
    const colon = local.lastIndexOf(':');
    if (colon < 0) continue;
    const port = Number(local.slice(colon + 1));
    if (!Number.isInteger(port) || port <= 0) continue;
    let addr = local.slice(0, colon).replace(/%.*$/, '');
    if (addr === '0.0.0.0' || addr === '*' || addr === '[::]') addr = '*';
    else if (addr.startsWith('[')) addr = addr.slice(1, -1);
    const users = /users:\(\((.*?)\)/.exec(line)?.[1];
    const proc = users ? users.split(',fd=')[0] : undefined;
    out.push({ proto, addr, port, ...(proc ? { process: proc } : {}) });
  }
  return out;
}

// The listener a published port would take connections from, if any. An IPv6 wildcard counts:
// it takes IPv4 too unless v6only, which ss does not show.
export function listenerFor(p: PublishedPort, listeners: readonly Listener[]): Listener | undefined {
  return listeners.find((l) => l.proto === p.proto && l.port === p.hostPort && (l.addr === '*' || !p.hostAddr || l.addr === p.hostAddr) && !l.addr.includes(':'));
}
