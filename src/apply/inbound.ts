import type { NamespaceConfig, Step } from '../plan/types.js';
import { publishedIn, renderPublishAdd, renderPublishDelete, type PublishMember } from '../net/publish.js';
import { parseListeners, type Listener } from '../net/listeners.js';
import { tbfArgs } from '../net/rate.js';
import { nftApply } from '../sys/nft.js';
import { run } from '../sys/run.js';
import { tryRead, write as writeSysctl } from '../sys/sysctl.js';

// The executors of the published-port and bandwidth-cap steps (plan/inbound.ts). Each undo
// succeeds when its object is gone already; the nft parts fall back to rendering nsroute's
// table whole (executors.ts), which is exact whatever was there.

type PublishStep = Extract<Step, { kind: 'publish' }>;
type RateStep = Extract<Step, { kind: 'rate' }>;

export function publishMemberOf(step: PublishStep): PublishMember {
  return { nsAddress: step.nsAddress, ports: step.ports, ...(step.uplink ? { uplink: step.uplink } : {}) };
}

// route_localnet on NAME's own host veth: what lets a packet from 127.0.0.1 (the host's own
// client of 127.0.0.1:HOSTPORT, DNATed in the output path) leave by it (net/publish.ts).
const localnet = (iface: string) => `conf/${iface}/route_localnet`;

export function enableLocalnet(step: PublishStep): void {
  if (tryRead(localnet(step.iface)) !== '1') writeSysctl(localnet(step.iface), '1');
}

// Back to what a new interface gets (the veth had that value when nsroute created it).
export function disableLocalnet(step: PublishStep): void {
  const now = tryRead(localnet(step.iface));
  const fresh = tryRead('conf/default/route_localnet') ?? '0';
  if (now !== undefined && now !== fresh) writeSysctl(localnet(step.iface), fresh);
}

// NAME's elements of the publish maps in one transaction; `renderAll` (the table whole, with
// this NAME's ports) when that fails: no table yet, or one of an older nsroute without them.
export async function addPublished(step: PublishStep, renderAll: () => Promise<void>): Promise<void> {
  enableLocalnet(step);
  try {
    await nftApply(renderPublishAdd(publishMemberOf(step)));
  } catch {
    await renderAll();
  }
}

// Exactly NAME's elements go; `renderAll` (from the other NAMEs) when one is missing already.
export async function removePublished(step: PublishStep, renderAll: () => Promise<void>): Promise<void> {
  try {
    await nftApply(renderPublishDelete(publishMemberOf(step)));
  } catch {
    await renderAll();
  }
  disableLocalnet(step);
}

// Errors that mean "nothing of ours there": the device is gone, or has its default qdisc.
const NOTHING_THERE = /Cannot find device|No such (file|device)|does not exist|handle of zero|Cannot find specified qdisc|Invalid handle/i;

async function tc(args: readonly string[], netns?: string): Promise<void> {
  await run(['tc', ...(netns ? ['-n', netns] : []), ...args]);
}

// The root qdisc of a device goes back to the kernel's default.
async function clearRoot(dev: string, netns?: string): Promise<void> {
  const r = await run(['tc', ...(netns ? ['-n', netns] : []), 'qdisc', 'del', 'dev', dev, 'root'], { allowFail: true });
  if (r.exitCode !== 0 && !NOTHING_THERE.test(r.stderr)) throw new Error(`tc qdisc del dev ${dev} root: ${r.stderr.trim()}`);
}

// Sets both directions to what the step says (`replace`: the same call changes a running
// NAME's caps in place); a direction the step leaves out gets the default qdisc back.
export async function applyRate(step: RateStep): Promise<void> {
  await (step.down ? tc(tbfArgs(step.hostIface, step.down)) : clearRoot(step.hostIface));
  await (step.up ? tc(tbfArgs(step.nsIface, step.up), step.netns) : clearRoot(step.nsIface, step.netns));
}

// The host end only: the namespace end's qdisc goes with the veth pair (deleted with either
// end), and undo never enters a namespace that may no longer be nsroute's.
export async function undoRate(step: RateStep): Promise<void> {
  await clearRoot(step.hostIface);
}

// The host's listening sockets (one `ss`, only when ports are to be published).
export async function readListeners(): Promise<Listener[]> {
  const r = await run(['ss', '-H', '-l', '-n', '-p', '-t', '-u'], { allowFail: true });
  return r.exitCode === 0 ? parseListeners(r.stdout) : [];
}

// After a lost run dir (lifecycle.ts recoverLost): a namespace's published ports and caps are
// read back from the kernel, where they are (the publish maps of nsroute's table; the tbf
// qdiscs of its veth's two ends), so the rebuilt journal undoes them too.
export async function recoverInbound(config: NamespaceConfig, ruleset: unknown): Promise<void> {
  const ports = publishedIn(ruleset, config.nsAddress);
  if (ports.length > 0) config.publish = ports;
  const [down, up] = await Promise.all([tbfRate(config.hostIface), tbfRate(config.nsIface, config.name)]);
  if (down) config.rateDown = down;
  if (up) config.rateUp = up;
}

async function tbfRate(dev: string, netns?: string): Promise<string | undefined> {
  const r = await run(['tc', ...(netns ? ['-n', netns] : []), '-j', 'qdisc', 'show', 'dev', dev, 'root'], { allowFail: true });
  if (r.exitCode !== 0) return undefined;
  try {
    const q = (JSON.parse(r.stdout) as { kind?: string; root?: boolean; options?: { rate?: number } }[]).find((x) => x.kind === 'tbf' && x.root);
    // tc -j prints the rate in bytes per second.
    return q?.options?.rate ? `${q.options.rate * 8}bit` : undefined;
  } catch {
    return undefined;
  }
}
