import { existsSync } from 'node:fs';
import { ipBatch, ipBatchForce, ipIgnoringGone, ipJson } from './ip.js';
import { run } from './run.js';
import { routeSpec } from '../net/routespec.js';
import { addrArgs, addrsOf, missingAfterGiveBack, moveToBridgeLines, routeLines, takenAddr, type Family, type TakenOver } from '../net/takeover.js';
import { listDir, writeFileAtomic } from './fsx.js';
import { dhcpPid } from './dhcppid.js';

// bridge / macvlan modes: the host side of a namespace that is its own host on a LAN.

// Interfaces the kernel reports as wireless (cannot be bridge ports).
export function wirelessInterfaces(): string[] {
  return listDir('/sys/class/net').filter((d) => existsSync(`/sys/class/net/${d}/wireless`) || existsSync(`/sys/class/net/${d}/phy80211`));
}

type Json = Record<string, unknown>;

export type { TakenOver } from '../net/takeover.js';

function asArray(j: unknown): Json[] {
  return Array.isArray(j) ? (j as Json[]) : [];
}

// An interface's addresses and routes, recorded the way takeover needs them (net/takeover.ts).
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
    const taken = takenAddr(a);
    if (taken) out.addrs.push(taken);
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

async function linkExists(dev: string): Promise<boolean> {
  return (await run(['ip', 'link', 'show', 'dev', dev], { allowFail: true })).exitCode === 0;
}

// The addresses on DEV, recorded the same way (empty when DEV is gone).
async function addrsOn(dev: string): Promise<Set<string>> {
  const j = await ipJson(['address', 'show', 'dev', dev]).catch(() => []);
  return new Set(asArray(asArray(j)[0]?.addr_info).flatMap((a) => takenAddr(a)?.cidr ?? []));
}

// The bridge takes the interface's place: same MAC (DHCP reservations, ARP caches) and MTU,
// its addresses and routes; then the interface becomes its port. Stops at the first failure:
// the caller rolls back with giveBack.
export async function takeOver(iface: string, t: TakenOver): Promise<void> {
  await ipBatch([
    `link add name ${t.bridge} type bridge`,
    ...(t.mac ? [`link set dev ${t.bridge} address ${t.mac}`] : []),
    ...(t.mtu ? [`link set dev ${t.bridge} mtu ${t.mtu}`] : []),
    `link set dev ${t.bridge} up`,
  ]);
  await ipBatch(moveToBridgeLines(t, iface, 4), undefined, 4);
  await ipBatch(moveToBridgeLines(t, iface, 6), undefined, 6);
  await ipBatch([`link set dev ${iface} master ${t.bridge}`]);
  await ipBatchForce(routeLines(t, 4, t.bridge), 4);
  await ipBatchForce(routeLines(t, 6, t.bridge), 6);
}

// Undo of a takeover, also of a half-done one: the interface leaves the bridge and gets back
// every recorded address and route, and the bridge goes. Verified, not assumed: it throws
// (and the caller keeps the record, so \`down\` or \`gc\` can retry) unless the interface has
// all of them again and the bridge is gone. A bridge that still holds an address the interface
// did not take back is never deleted: the host keeps that address somewhere.
export async function giveBack(iface: string, t: TakenOver): Promise<void> {
  const { bridge } = t;
  if (!(await linkExists(iface))) {
    if (!(await linkExists(bridge))) return; // both gone (e.g. the device was unplugged): nothing left to give back
    throw new Error(`cannot give ${iface} its addresses back: ${iface} is gone; they stay on ${bridge} (move them by hand and \`ip link del ${bridge}\`, then \`nsroute gc\`)`);
  }
  const failures: string[] = [];
  const force = async (lines: string[], family?: Family): Promise<void> => {
    const err = await ipBatchForce(lines, family);
    if (err) failures.push(err);
  };
  await force([`link set dev ${iface} nomaster`]);
  // Onto the interface first, and off the bridge only once it is there: an address the
  // interface cannot take back (IPv6 turned off on it, say) stays on the host, on the bridge.
  // The kernel lists a link's IPv6 addresses of one scope newest first (IPv4 ones in the order
  // added): IPv6 added in reverse, both come back in the recorded order.
  await force(addrsOf(t, 4).map((a) => `address add ${addrArgs(a)} dev ${iface}`), 4);
  await force(addrsOf(t, 6).reverse().map((a) => `address add ${addrArgs(a)} dev ${iface}`), 6);
  const onIface = await addrsOn(iface);
  for (const family of [4, 6] as const) {
    await force(addrsOf(t, family).filter((a) => onIface.has(a.cidr)).map((a) => `address del ${a.cidr} dev ${bridge}`), family);
  }
  const stranded = t.addrs.filter((a) => !onIface.has(a.cidr)).map((a) => a.cidr);
  const onBridge = await addrsOn(bridge);
  const stillOnBridge = t.addrs.filter((a) => onBridge.has(a.cidr)).map((a) => a.cidr);
  if (stranded.length === 0 && stillOnBridge.length === 0) await ipIgnoringGone(['link', 'del', 'dev', bridge]);
  // After the bridge (its routes go with it): the recorded routes, onto the interface.
  await force(routeLines(t, 4, iface), 4);
  await force(routeLines(t, 6, iface), 6);
  const now = await readTakeover(iface, bridge);
  const missing = missingAfterGiveBack(t, now);
  const bridgeLeft = await linkExists(bridge);
  if (missing.addrs.length === 0 && missing.routes.length === 0 && !bridgeLeft) return;
  const what = [
    ...(missing.addrs.length > 0 ? [`address(es) ${missing.addrs.join(', ')}`] : []),
    ...(missing.routes.length > 0 ? [`route(s) ${missing.routes.join('; ')}`] : []),
  ];
  const why = failures.length > 0 ? ` (ip: ${failures.join('; ')})` : '';
  throw new Error(
    what.length > 0
      ? `could not give ${iface} back its ${what.join(' and ')}${why}; ${bridgeLeft ? `bridge ${bridge} is kept${stillOnBridge.length > 0 ? ` with ${stillOnBridge.join(', ')}` : ''}; ` : ''}\`nsroute gc\` retries once ${iface} can take them`
      : `gave ${iface} back everything but could not delete bridge ${bridge}${why}; \`nsroute gc\` retries`,
  );
}

export async function startDhcp(name: string, iface: string, script: string, scriptPath: string, pidFile: string): Promise<void> {
  writeFileAtomic(scriptPath, script, 0o755);
  // Without -f, udhcpc gets the first lease in the foreground, then goes to the background to
  // renew it; -n fails when no server answers; -R releases the lease when it is stopped.
  const r = await run(['ip', 'netns', 'exec', name, 'udhcpc', '-i', iface, '-s', scriptPath, '-p', pidFile, '-R', '-n', '-t', '5', '-T', '1', '-A', '1'], { allowFail: true });
  if (r.exitCode !== 0) throw new Error(`no DHCP lease on ${iface} in ${name}: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
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
