// cgroup mode (issue 12): programs routed by their cgroup, without a namespace. They stay in
// the fake host's network (nsroute runs there via `nsenter --net`, which keeps the host's
// mounts and cgroup filesystem): a member's sockets are made in the fake host and matched
// there. Every cgroup lives under the world's own parent (NSROUTE_CGROUP_PARENT), removed
// after the file, also when it fails.
import { existsSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FAST_GW, HOST_FAST_ADDR, HOST_SLOW_ADDR, PATH_PORT, PATH_SERVER, PATH_SERVER6, SLOW_GW, type Snapshot, type World } from '../world/world.js';
import { expectOk, expectUserError, PATH4, PATH6, probeName, show, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snap) => ((w = world), (clean = snap)), { rpFilter: true });

// The cgroup v2 mount (hybrid here: /sys/fs/cgroup/unified).
function cgMount(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n') as string[]) {
    const dash = line.indexOf(' - ');
    if (dash > 0 && line.slice(dash + 3).startsWith('cgroup2 ')) return line.split(' ')[4]!;
  }
  throw new Error('no cgroup2 mount');
}
const parent = () => `${w.prefix}cg`;
const env = () => ({ NSROUTE_CGROUP_PARENT: parent() });
const ns = (args: string[], opts: { env?: Record<string, string> } = {}) => w.nsroute(args, { env: { ...env(), ...opts.env } });

// Every cgroup directory of this world (what a snapshot compares).
function cgroupDirs(): string[] {
  const root = join(cgMount(), parent());
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((f) => statSync(join(root, f)).isDirectory());
}

afterAll(() => {
  const root = join(cgMount(), parent());
  if (!existsSync(root)) return;
  for (const d of readdirSync(root)) {
    const p = join(root, d);
    if (statSync(p).isDirectory()) rmdirSync(p);
  }
  rmdirSync(root);
});

describe('cgroup mode: exec', () => {
  it('--via SLOW goes slow, without nsroute fast, and the host stays fast meanwhile', async () => {
    const n = w.name('c1');
    const r = await ns(['exec', n, '--mode', 'cgroup', '--via', SLOW_GW, '--', ...PATH4]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
    expect(await w.hostPath(4)).toBe(`fast ${HOST_FAST_ADDR}`);
    expect(cgroupDirs()).toEqual([]);
    expect(await w.snapshot()).toEqual(clean);
  });
});
