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

// IPv6 forwarding (--ipv6 nat). conf/all/forwarding=1 makes every interface a router, and a
// router ignores router advertisements unless accept_ra is 2: the host would lose its
// SLAAC address and default route. So interfaces that accept RAs (1) get 2 first, and all
// of forwarding and accept_ra are saved to be put back.
const BASE6 = '/proc/sys/net/ipv6';

export function readForwarding6Sysctls(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const dev of listDir(`${BASE6}/conf`)) {
    for (const key of ['forwarding', 'accept_ra']) {
      const v = tryRead6(`conf/${dev}/${key}`);
      if (v !== undefined) out[`conf/${dev}/${key}`] = v;
    }
  }
  return out;
}

export function tryRead6(rel: string): string | undefined {
  try {
    return readFileSync(`${BASE6}/${rel}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function write6(rel: string, value: string): void {
  writeFileSync(`${BASE6}/${rel}`, `${value}\n`);
}

// Reverse-path filtering by the uplink's table (see net/nft.ts): per interface.
export function srcValidMarkPath(dev: string): string {
  return `conf/${dev}/src_valid_mark`;
}
