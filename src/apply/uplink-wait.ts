import { SysError } from '../errors.js';
import { ipBatch } from '../sys/ip.js';
import { run } from '../sys/run.js';

// An uplink that is down, missing or without its address when NAME comes up (plan.ts
// `chooseUplink`, up only): the kernel refuses its default route ("Nexthop device is not
// up", "Cannot find device", "Nexthop has invalid gateway"). NAME then comes up with only the
// table's unreachable route, its kill switch closed, and the watcher (apply/watch.ts) adds
// the route when the link comes up or gets its address: the same repair as after a flap.

// Whether DEV can carry the route now: it exists, is up, and (IPv4) has an address.
export async function uplinkUsable(dev: string, family: 4 | 6): Promise<boolean> {
  const r = await run(['ip', '-j', 'address', 'show', 'dev', dev], { allowFail: true });
  if (r.exitCode !== 0) return false;
  const link = (JSON.parse(r.stdout || '[]') as { flags?: string[]; addr_info?: { family?: string }[] }[])[0];
  if (!link || !(link.flags ?? []).includes('UP')) return false;
  return family === 6 || (link.addr_info ?? []).some((a) => a.family === 'inet');
}

// The uplink table's lines (default route, then the unreachable fallback): all of them, or,
// when the default route is refused because DEV is not usable yet, the fallback alone.
export async function addUplinkRoutes(lines: readonly string[], dev: string, family?: 6): Promise<void> {
  try {
    await ipBatch(lines, undefined, family);
  } catch (e) {
    if (!(e instanceof SysError) || (await uplinkUsable(dev, family ?? 4))) throw e;
    await ipBatch(lines.filter((l) => / unreachable /.test(l)), undefined, family);
  }
}
