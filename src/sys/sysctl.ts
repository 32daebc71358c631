import { readFileSync, writeFileSync } from 'node:fs';
import { listDir } from './fsx.js';

// IPv4 forwarding sysctls of the current network namespace. Writing ip_forward rewrites
// every conf/*/forwarding and conf/all/accept_redirects (devinet's inet_forward_change),
// so all of them are saved and put back, not just ip_forward.
const BASE = '/proc/sys/net/ipv4';

export function readForwardingSysctls(): Record<string, string> {
  const out: Record<string, string> = { ip_forward: read('ip_forward') };
  for (const dev of listDir(`${BASE}/conf`)) out[`conf/${dev}/forwarding`] = read(`conf/${dev}/forwarding`);
  out['conf/all/accept_redirects'] = read('conf/all/accept_redirects');
  return out;
}

export function read(rel: string): string {
  return readFileSync(`${BASE}/${rel}`, 'utf8').trim();
}

export function tryRead(rel: string): string | undefined {
  try {
    return read(rel);
  } catch {
    return undefined;
  }
}

export function write(rel: string, value: string): void {
  writeFileSync(`${BASE}/${rel}`, `${value}\n`);
}
