import { existsSync, readFileSync } from 'node:fs';
import { ipBatch, ipBatchForce, ipJson } from './ip.js';
import { run } from './run.js';
import { routeSpec } from '../net/routespec.js';
import { listDir, readRegularFile, writeFileAtomic } from './fsx.js';

// bridge / macvlan modes: the host side of a namespace that is its own host on a LAN.

// Interfaces the kernel reports as wireless (cannot be bridge ports).
export function wirelessInterfaces(): string[] {
  return listDir('/sys/class/net').filter((d) => existsSync(`/sys/class/net/${d}/wireless`) || existsSync(`/sys/class/net/${d}/phy80211`));
}

type Json = Record<string, unknown>;

// What an interface looks like before nsroute takes it into a bridge, to put back exactly.
export interface TakenOver {
  bridge: string;
  mac?: string;
  mtu?: number;
  addrs: { cidr: string; family: 4 | 6; broadcast?: string }[];
  routes: { family: 4 | 6; spec: string }[]; // `ip route` arguments without the dev
}

function asArray(j: unknown): Json[] {
  return Array.isArray(j) ? (j as Json[]) : [];
}

export async function readTakeover(iface: string, bridge: string): Promise<TakenOver> {
  const [link, addrs, r4, r6] = await Promise.all([
    ipJson(['link', 'show', 'dev', iface]),
    ipJson(['address', 'show', 'dev', iface]),
    ipJson(['-4', '-N', 'route', 'show', 'table', 'all', 'dev', iface]),
    ipJson(['-6', '-N', 'route', 'show', 'table', 'all', 'dev', iface]),
  ]);
  const l = asArray(link)[0] ?? {};
  const out: TakenOver = { bridge, addrs: [], routes: [] };
  if (typeof l.address === 'string') out.mac = l.address;
  if (typeof l.mtu === 'number') out.mtu = l.mtu;
  for (const a of asArray(asArray(addrs)[0]?.addr_info)) {
    if (a.family !== 'inet' && a.family !== 'inet6') continue;
    if (a.family === 'inet6' && a.scope === 'link') continue; // each link has its own
    out.addrs.push({ cidr: `${a.local}/${a.prefixlen}`, family: a.family === 'inet' ? 4 : 6, ...(typeof a.broadcast === 'string' ? { broadcast: a.broadcast } : {}) });
  }
  for (const [family, routes] of [[4, r4], [6, r6]] as const) {
    for (const r of asArray(routes)) {
      // Routes the kernel makes for addresses (and the local table) come back by themselves.
      if (r.protocol === 'kernel' || r.table === 'local' || String(r.table) === '255') continue;
      if (family === 6 && String(r.dst).startsWith('fe80::') ) continue;
      out.routes.push({ family, spec: routeSpec(r) });
    }
  }
  return out;
}

function moveLines(t: TakenOver, from: string, to: string): string[] {
  return t.addrs.flatMap((a) => [`address del ${a.cidr} dev ${from}`, `address add ${a.cidr}${a.broadcast ? ` broadcast ${a.broadcast}` : ''} dev ${to}`]);
}

function routeLines(t: TakenOver, family: 4 | 6, dev: string): string[] {
  return t.routes.filter((r) => r.family === family).map((r) => `route replace ${r.spec} dev ${dev}`);
}

// The bridge takes the interface's place: same MAC (DHCP reservations, ARP caches) and MTU,
// its addresses and routes; then the interface becomes its port.
export async function takeOver(iface: string, t: TakenOver): Promise<void> {
  await ipBatch([
    `link add name ${t.bridge} type bridge`,
    ...(t.mac ? [`link set dev ${t.bridge} address ${t.mac}`] : []),
    ...(t.mtu ? [`link set dev ${t.bridge} mtu ${t.mtu}`] : []),
    `link set dev ${t.bridge} up`,
    ...moveLines(t, iface, t.bridge),
    `link set dev ${iface} master ${t.bridge}`,
  ]);
  await ipBatchForce(routeLines(t, 4, t.bridge), 4);
  await ipBatchForce(routeLines(t, 6, t.bridge), 6);
}

// Undo: the interface leaves the bridge, gets its addresses and routes back, the bridge goes.
// Goes on past lines that fail (a half-done takeover).
export async function giveBack(iface: string, t: TakenOver): Promise<void> {
  await ipBatchForce([`link set dev ${iface} nomaster`, ...moveLines(t, t.bridge, iface), `link del dev ${t.bridge}`], 4);
  await ipBatchForce(routeLines(t, 4, iface), 4);
  await ipBatchForce(routeLines(t, 6, iface), 6);
}

export async function startDhcp(name: string, iface: string, script: string, scriptPath: string, pidFile: string): Promise<void> {
  writeFileAtomic(scriptPath, script, 0o755);
  // Without -f, udhcpc gets the first lease in the foreground, then goes to the background to
  // renew it; -n fails when no server answers; -R releases the lease when it is stopped.
  const r = await run(['ip', 'netns', 'exec', name, 'udhcpc', '-i', iface, '-s', scriptPath, '-p', pidFile, '-R', '-n', '-t', '5', '-T', '1', '-A', '1'], { allowFail: true });
  if (r.exitCode !== 0) throw new Error(`no DHCP lease on ${iface} in ${name}: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
}

// The DHCP client's pid, from the pid file udhcpc wrote in the run dir (root's alone; the
// file's own mode follows the umask nsroute ran with): a regular file, not a symlink, and
// only a pid that is still a udhcpc (pids are reused: a stale file must not make teardown
// signal some other process).
export function dhcpPid(pidFile: string): number | undefined {
  try {
    const pid = Number((readRegularFile(pidFile) ?? '').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'udhcpc' ? pid : undefined;
  } catch {
    return undefined;
  }
}

export async function stopDhcp(pidFile: string): Promise<void> {
  const pid = dhcpPid(pidFile);
  if (!pid) return;
  try {
    process.kill(pid, 'SIGTERM'); // -R: the lease is released first
  } catch {
    return;
  }
  for (let i = 0; i < 60; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// On a LAN, router advertisements would give the namespace IPv6 addresses and routes of its
// own: IPv6 is off there (as in nat mode's default), so nothing leaves by it.
export async function disableIpv6In(name: string): Promise<void> {
  await run(['ip', 'netns', 'exec', name, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
}
