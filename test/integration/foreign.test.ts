// Issue #10, finding 4: nsroute removes only what it created. Another tool deletes NAME's
// namespace while nsroute uses it and makes its own NAME: teardown leaves that namespace (and
// the processes in it) alone, says so in one line, and still removes what is provably
// nsroute's (identified by the namespace's inode recorded at creation and the veth's owner tag).
import { spawn } from 'node:child_process';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SLOW_GW, type Snapshot, type World } from '../world/world.js';
import { expectOk, holdScript, marker, show, waitForFile, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const inode = (name: string): number => statSync(`/run/netns/${name}`).ino;
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// Another tool: deletes NAME (nsroute's namespace lives on while a process is inside) and makes
// its own NAME. Returns the new namespace's inode.
async function replaceNamespace(name: string): Promise<number> {
  const before = inode(name);
  expectOk(await w.inHost(['ip', 'netns', 'del', name]));
  expectOk(await w.inHost(['ip', 'netns', 'add', name]));
  const after = inode(name);
  expect(after).not.toBe(before);
  return after;
}

describe('a namespace nsroute did not create', () => {
  it('replaced while an exec runs in NAME: the exec ends, the other namespace stays, nsroute removes its own objects', async () => {
    const n = w.name('fr1');
    const ready = marker(w, 'fr1.ready');
    const stop = marker(w, 'fr1.stop');
    const held = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...holdScript(ready, stop)], { timeoutMs: 60_000 });
    try {
      await waitForFile(ready, 60_000);
      const foreign = await replaceNamespace(n);
      writeFileSync(stop, '');
      const r = await held.result;
      expectOk(r);
      expect(w.netnsExists(n), 'the other tool\'s namespace is still there').toBe(true);
      expect(inode(n)).toBe(foreign);
      const notices = r.stderr.trim().split('\n').filter((l) => l.includes(n));
      expect(notices, show(r)).toHaveLength(1);
      expect(notices[0], show(r)).toMatch(/^nsroute: left network namespace \S+ alone/);
      // Everything nsroute made for NAME is gone: the fake host is as before (the other
      // namespace is not part of it), and nsroute has no record of NAME any more.
      expect(await w.snapshot()).toEqual(clean);
      const st = await w.nsroute(['status', n, '--json']);
      expect(st.stdout, show(st)).not.toMatch(/"status": "(up|interrupted)"/);
      const gc = await w.nsroute(['gc', '--json']);
      expectOk(gc);
      expect(w.netnsExists(n), 'gc leaves it alone too').toBe(true);
      expect(inode(n)).toBe(foreign);
    } finally {
      writeFileSync(stop, '');
      await held.result;
      await w.inHost(['ip', 'netns', 'del', n]);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('down --force of a replaced NAME ends nsroute\'s processes, never the other namespace\'s', async () => {
    const n = w.name('fr2');
    const ready = marker(w, 'fr2.ready');
    const stop = marker(w, 'fr2.stop');
    const held = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...holdScript(ready, stop)], { timeoutMs: 60_000 });
    // A process of the other tool, in its own namespace of the same name.
    let other: ReturnType<typeof spawn> | undefined;
    try {
      await waitForFile(ready, 60_000);
      const foreign = await replaceNamespace(n);
      other = spawn('ip', ['netns', 'exec', n, 'sleep', '300'], { stdio: 'ignore' });
      const otherPid = other.pid!;
      // `ip netns exec` execs sleep in place: wait until it runs inside the other namespace.
      const { waitFor } = await import('../world/world.js');
      await waitFor(() => statSync(`/proc/${otherPid}/ns/net`).ino === foreign, 'the other tool\'s process', 30_000);
      const down = await w.nsroute(['down', n, '--force'], { timeoutMs: 60_000 });
      expectOk(down);
      const r = await held.result;
      expect(r.exitCode, `nsroute's exec was ended: ${show(r)}`).not.toBe(0);
      expect(alive(otherPid), 'the other tool\'s process was not signalled').toBe(true);
      expect(w.netnsExists(n)).toBe(true);
      expect(inode(n)).toBe(foreign);
      expect(await w.snapshot()).toEqual(clean);
    } finally {
      writeFileSync(stop, '');
      other?.kill('SIGKILL');
      await held.result;
      await w.inHost(['ip', 'netns', 'del', n]);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('gc with the run dir lost does not adopt another tool\'s namespace of the same name', async () => {
    const n = w.name('fr3');
    // A process keeps nsroute's namespace (and so its tagged veth) alive after its name is taken.
    let keeper: ReturnType<typeof spawn> | undefined;
    try {
      expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--no-watch']));
      const ours = inode(n);
      keeper = spawn('ip', ['netns', 'exec', n, 'sleep', '300'], { stdio: 'ignore' });
      const keeperPid = keeper.pid!;
      const { waitFor } = await import('../world/world.js');
      await waitFor(() => statSync(`/proc/${keeperPid}/ns/net`).ino === ours, 'the keeper process', 30_000);
      rmSync(w.runDir, { recursive: true, force: true });
      const foreign = await replaceNamespace(n);
      const gc = await w.nsroute(['gc', '--json']);
      expectOk(gc);
      const report = JSON.parse(gc.stdout) as { recovered: string[]; removed: { object: string; name: string }[] };
      expect(report.recovered, show(gc)).toEqual([]);
      expect(report.removed, show(gc)).toContainEqual(expect.objectContaining({ object: 'link' }));
      expect(report.removed.map((r) => r.object), show(gc)).not.toContain('netns');
      // nsroute has no record of n: down leaves the other namespace alone.
      const down = await w.nsroute(['down', n, '--force']);
      expect(down.exitCode, show(down)).toBe(2);
      expect(w.netnsExists(n)).toBe(true);
      expect(inode(n)).toBe(foreign);
      expect(alive(keeperPid), 'a process in nsroute\'s old namespace is not the other tool\'s business either').toBe(true);
    } finally {
      keeper?.kill('SIGKILL');
      await w.inHost(['ip', 'netns', 'del', n]);
      await w.nsroute(['gc']);
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});
