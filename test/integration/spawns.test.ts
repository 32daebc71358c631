// What an exec costs, as structure rather than time (issue 11): the processes nsroute spawns
// and the host-lock takes, counted from NSROUTE_TRACE (src/sys/trace.ts). A cold exec creates
// and removes its namespace in a handful of batched spawns; a hot exec into a persistent NAME
// that its watcher keeps right spawns only the command and the lock (no repair). And the wrapper
// that enters the namespace refuses to run the command in any namespace but the one nsroute
// checked (a NAME replaced by another tool between the check and the exec is never entered).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, SLOW_GW, waitFor, type World } from '../world/world.js';
import { expectOk, hostWatcherPid, marker, show } from '../world/helpers.js';
import { HIDE_HOST_RESOLVERS } from '../../src/sys/wrapper.js';

let w: World;
beforeAll(async () => {
  w = await createWorld();
});
afterAll(async () => {
  await w?.destroy();
});

interface TraceLine {
  ev: 'spawn' | 'lock' | 'done' | 'plan';
  early?: boolean; // plan: made before the lock from the host facts read before it
  argv?: string[];
  op?: 'acquire' | 'release';
  via?: 'runner';
  lock?: true; // a take or release of the host lock by the runner (mostly without a process)
  probe?: true; // `nft list table ...` the runner answers with a netlink request, without nft
}

// The tool runner itself (src/sys/runner.ts): a perl process that forks the tools for nsroute.
const isRunner = (a: readonly string[]) => a[0] === 'perl' && a[1] === '-e';

// spawns: every tool nsroute ran (directly or through its runner), the runner itself not
// counted; forks: the processes Node spawned itself (each a fork of the whole Node process);
// lockOps: the runner's takes and releases of the host lock.
// sections: per take of the host lock, the tools run while it was held.
async function traced(args: string[]): Promise<{ spawns: string[][]; forks: string[][]; locks: string[]; lockOps: string[]; probes: string[][]; sections: string[][][]; plans: string[] }> {
  const file = marker(w, `trace-${Math.random().toString(16).slice(2)}`);
  const r = await w.nsroute(args, { env: { NSROUTE_TRACE: file } });
  expectOk(r);
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TraceLine);
  rmSync(file);
  const spawned = lines.filter((l) => l.ev === 'spawn');
  const sections: string[][][] = [];
  let inside: string[][] | undefined;
  for (const l of lines) {
    if (l.ev === 'lock' && l.op === 'acquire') sections.push((inside = []));
    else if (l.ev === 'lock' && l.op === 'release') inside = undefined;
    else if (inside && l.ev === 'spawn' && !isRunner(l.argv!) && !l.lock && !l.probe) inside.push(l.argv!);
  }
  return {
    sections,
    // 'early' (planned before the lock) / 'locked', and where: 'L' marks each take of the lock.
    plans: lines.filter((l) => l.ev === 'plan' || (l.ev === 'lock' && l.op === 'acquire')).map((l) => (l.ev === 'lock' ? 'L' : l.early ? 'early' : 'locked')),
    spawns: spawned.filter((l) => !isRunner(l.argv!) && !l.lock && !l.probe).map((l) => l.argv!),
    probes: spawned.filter((l) => l.probe).map((l) => l.argv!),
    forks: spawned.filter((l) => l.via !== 'runner').map((l) => l.argv!),
    locks: lines.filter((l) => l.ev === 'lock').map((l) => l.op!),
    lockOps: spawned.filter((l) => l.lock).map((l) => l.argv!.join(' ')),
  };
}


describe('spawns per exec', () => {
  it('a cold exec with --via runs at most 12 tools, forks Node twice, and takes the host lock twice (create, teardown) through the runner', async () => {
    // The lock file exists (made by the first command since boot that took the lock, here gc):
    // exec hands it to the runner.
    expectOk(await w.nsroute(['gc']));
    const t = await traced(['exec', w.name('cold'), '--via', SLOW_GW, '--', 'true']);
    const shown = t.spawns.map((a) => a.slice(0, 5).join(' ')).join('\n');
    // host facts (two ip batches side by side, nft's chains), create (host batch, inside
    // batch, nft), the command, teardown (one read, nft, ruleset for the firewall holes, two
    // ip batches: the namespace first, then its veth if still there, which is cheaper than one
    // batch deleting the veth: apply.ts namespaceFirst). None of them more with more NAMEs
    // (scale.test).
    expect(t.spawns.length, shown).toBeLessThanOrEqual(12);
    expect(t.spawns.filter((a) => a[0] === 'ip' && a.includes('-batch')).length, shown).toBeLessThanOrEqual(7);
    // A command this short ends before exec's monitors would start.
    expect(t.spawns.some((a) => a.includes('monitor')), shown).toBe(false);
    // What Node forks itself (~10 ms each: the whole Node process): the tool runner and the
    // command. Every tool is a fork of the small runner, and the lock is the runner's flock(2).
    const forks = t.forks.map((a) => a.slice(0, 3).join(' ')).join('\n');
    expect(t.forks.length, forks).toBe(2);
    expect(t.forks.filter(isRunner).length, forks).toBe(1);
    expect(t.locks).toEqual(['acquire', 'release', 'acquire', 'release']);
    expect(t.lockOps).toEqual(['flock -x 3', 'flock -u 3', 'flock -x 3', 'flock -u 3']);
    // Planned before the lock, from the host facts read before it; not again under it.
    expect(t.plans).toEqual(['early', 'L', 'L']);
    // The teardown's read of the host (the veth's owner tag, the rules) ran before its lock
    // section, while the exec waited for the lock: under the lock only what removes.
    const teardown = t.sections[1]!.map((a) => a.slice(0, 5).join(' ')).join('\n');
    expect(t.sections[1]!.filter((a) => a[0] === 'ip' && a.includes('-j')), teardown).toEqual([]);
    expect(t.spawns.filter((a) => a[0] === 'ip' && a.includes('-j') && a.includes('-4') && !a.includes('-N')).length, shown).toBe(1);
    expect(w.netnsExists(w.name('cold'))).toBe(false);
  });

  // A cold exec of NAME held at pause point `point` while a gc takes the host lock, then let go:
  // what it traced.
  async function coldExecWithTakeAt(n: string, point: string): Promise<TraceLine[]> {
    const pause = marker(w, `${n}-pause`);
    const file = marker(w, `${n}-trace`);
    const exec = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', 'true'], { env: { NSROUTE_TRACE: file, NSROUTE_TEST_PAUSE: `${point}:${pause}` } });
    try {
      await waitFor(() => existsSync(`${pause}.reached`), `the exec to reach ${point}`, 60_000);
      expectOk(await w.nsroute(['gc']));
    } finally {
      closeSync(openSync(pause, 'w'));
    }
    expectOk(await exec.result);
    expect(w.netnsExists(n)).toBe(false);
    return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TraceLine);
  }

  it('a take of the host lock between the teardown\'s early read and its lock section: the teardown reads again, under the lock', async () => {
    const lines = await coldExecWithTakeAt(w.name('cold2'), 'release:0');
    const lastTake = lines.map((l) => l.ev === 'lock' && l.op === 'acquire').lastIndexOf(true);
    const teardown = lines.slice(lastTake).filter((l) => l.ev === 'spawn' && l.argv![0] === 'ip' && l.argv!.includes('-j'));
    expect(teardown.map((l) => l.argv!.join(' '))).toEqual(['ip -j -4 -force -batch -']);
  });

  it('a take of the host lock between planning before the lock and the create: planned again, under the lock, from the host read again', async () => {
    const lines = await coldExecWithTakeAt(w.name('cold3'), 'plan:0');
    const order = lines.filter((l) => l.ev === 'plan' || (l.ev === 'lock' && l.op === 'acquire') || (l.ev === 'spawn' && l.argv![0] === 'ip' && l.argv!.includes('-N')));
    expect(order.map((l) => (l.ev === 'plan' ? `plan ${l.early ? 'early' : 'locked'}` : l.ev === 'lock' ? 'L' : 'read'))).toEqual(['read', 'read', 'plan early', 'L', 'read', 'read', 'plan locked', 'L']);
  });

  it('a hot exec into a watched persistent NAME takes no lock, spawns only the command after one look at the nft table, and makes no repair', async () => {
    const n = w.name('hot');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    await waitFor(() => hostWatcherPid(w) !== undefined, 'the watcher');
    const t = await traced(['exec', n, '--', 'true']);
    // One look at nsroute's nft table (a firewall reload the watcher has not repaired yet is
    // repaired before the command runs), which the runner answers itself, then the command.
    expect(t.probes).toEqual([['nft', 'list', 'table', 'inet', 'nsroute']]);
    expect(t.spawns.filter((a) => a[0] !== 'flock').map((a) => a.slice(0, 4)), JSON.stringify(t.spawns)).toEqual([['ip', 'netns', 'exec', n]]);
    expect(t.spawns.filter((a) => a[0] === 'flock'), JSON.stringify(t.spawns)).toEqual([]);
    expect(t.lockOps).toEqual([]);
    expect(t.locks).toEqual([]);
    // The same NAME without a watcher (--no-watch): the join repairs (reads nft and the rules).
    expectOk(await w.nsroute(['down', n]));
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--no-watch']));
    const slow = await traced(['exec', n, '--', 'true']);
    expect(slow.spawns.filter((a) => a[0] !== 'flock').length, JSON.stringify(slow.spawns)).toBeGreaterThan(1);
    expectOk(await w.nsroute(['down', n]));
  });

  it('list --json and status read state, /proc and /proc/net without the lock and without a spawn', async () => {
    const n = w.name('lst');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    for (const args of [['list', '--json'], ['status', n, '--json']]) {
      const t = await traced(args);
      expect(t.spawns, JSON.stringify(t.spawns)).toEqual([]);
      expect(t.locks).toEqual([]);
    }
    const r = await w.nsroute(['status', n, '--json']);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: n, up: true, persistent: true });
    expectOk(await w.nsroute(['down', n]));
  });

  it('a hot exec into a NAME another tool replaced never runs the command there', async () => {
    const n = w.name('swap');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    await waitFor(() => hostWatcherPid(w) !== undefined, 'the watcher');
    // Another tool deletes nsroute's namespace and makes its own of that name.
    expect(spawnSync('ip', ['netns', 'del', n]).status).toBe(0);
    expect(spawnSync('ip', ['netns', 'add', n]).status).toBe(0);
    const ran = marker(w, 'swap-ran');
    const r = await w.nsroute(['exec', n, '--', 'touch', ran]);
    expect(r.exitCode, show(r)).not.toBe(0);
    expect(existsSync(ran), 'the command must not run in the foreign namespace').toBe(false);
    spawnSync('ip', ['netns', 'del', n]);
    await w.nsroute(['down', n, '--force']);
  });
});

describe("the wrapper's namespace check", () => {
  // sh -c SCRIPT nsroute-exec NAME 3 CMD..., with fd 3 naming a namespace: runs CMD only when
  // the shell is in that very namespace.
  const wrapped = (fd3: string) => {
    const fd = openSync(fd3, 'r');
    try {
      // In a private mount namespace: the script hides resolver sockets with mounts.
      const argv = ['-m', '--propagation', 'private', 'sh', '-c', HIDE_HOST_RESOLVERS, 'nsroute-exec', 'x', '3', 'echo', 'ran'];
      return spawnSync('unshare', argv, { stdio: ['ignore', 'pipe', 'pipe', fd], encoding: 'utf8' });
    } finally {
      closeSync(fd);
    }
  };

  it('runs the command in the namespace fd 3 names', () => {
    const r = wrapped('/proc/self/ns/net');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('ran');
  });

  it('refuses (125) in any other namespace', () => {
    const other = w.name('other');
    expect(spawnSync('ip', ['netns', 'add', other]).status).toBe(0);
    try {
      const r = wrapped(`/run/netns/${other}`);
      expect(r.status).toBe(125);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('no longer the namespace');
    } finally {
      spawnSync('ip', ['netns', 'del', other]);
    }
  });
});
