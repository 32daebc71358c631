// Lock-free joins (issue 11, src/state/joins.ts): a hot exec into a persistent NAME the host
// watcher keeps right takes no host lock. What keeps that exact against a teardown: the join
// mark (ns/NAME/join), which down/teardown/gc remove under the lock before they look for
// processes, and which the command's wrapper checks from inside NAME right before the command;
// and the exec's holder record (RUN/joins), which down and status see like a state's holder.
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAST_GW, HOST_SLOW_ADDR, SLOW_GW, waitFor, type Snapshot, type Spawned, type World } from '../world/world.js';
import { expectOk, holdScript, hostWatcherPid, marker, PATH4, show, statusJson, useWorld, waitForFile } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const SLOW = `slow ${HOST_SLOW_ADDR}`;
const mark = (n: string) => join(w.runDir, 'ns', n, 'join');
// The file outlives a watcher (an earlier test's): its recorded process must be running.
const watcherUp = () => hostWatcherPid(w) !== undefined;

async function upWatched(n: string): Promise<void> {
  expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
  await waitFor(watcherUp, 'the watcher');
  expect(existsSync(mark(n)), 'up leaves NAME joinable').toBe(true);
}

// An up, watched NAME and an exec into it (`touch RAN`, with `options`) stopped at `point` until
// PAUSE exists; by default join:0, where it has joined (mark checked, holder recorded,
// namespace opened) and is about to start the command's wrapper (apply/crash.ts). The caller
// writes PAUSE and kills the exec in its finally.
async function pausedJoin(tag: string, point = 'join:0', options: string[] = []): Promise<{ n: string; pause: string; ran: string; exec: Spawned }> {
  const n = w.name(tag);
  await upWatched(n);
  const pause = marker(w, `${tag}-pause`);
  const ran = marker(w, `${tag}-ran`);
  const exec = w.spawnNsroute(['exec', n, ...options, '--', 'touch', ran], { env: { NSROUTE_TEST_PAUSE: `${point}:${pause}` }, timeoutMs: 600_000 });
  try {
    await waitForFile(`${pause}.reached`);
  } catch (e) {
    writeFileSync(pause, '');
    exec.kill('SIGKILL');
    throw e;
  }
  return { n, pause, ran, exec };
}

// Lets an exec paused by pausedJoin go on: it must refuse (125) with `message` and never run
// its command.
async function expectRefused(j: { pause: string; ran: string; exec: Spawned }, message: string): Promise<void> {
  writeFileSync(j.pause, '');
  const r = await j.exec.result;
  expect(r.exitCode, show(r)).toBe(125);
  expect(r.stderr, show(r)).toContain(message);
  expect(existsSync(j.ran), 'the command must not run').toBe(false);
}

describe('joins without the host lock', () => {
  it('a joined exec whose NAME began its teardown before the command started never runs it', async () => {
    const j = await pausedJoin('j1');
    const { n, pause, exec } = j;
    try {
      // What a teardown does first (under the lock): NAME is no longer joinable.
      rmSync(mark(n));
      await expectRefused(j, `${n} is being taken down; the command was not run`);
    } finally {
      writeFileSync(pause, '');
      exec.kill('SIGKILL');
    }
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('down --force ends an exec that joined but has not started its command yet, and the command never runs', async () => {
    const { n, pause, ran, exec } = await pausedJoin('j2');
    try {
      // The joined exec is a holder (its record), named by status and by a refused down.
      const st = await statusJson(w, n);
      expect(st.holders.map((h) => h.pid)).toEqual([exec.pid]);
      const refused = await w.nsroute(['down', n]);
      expect(refused.exitCode, show(refused)).toBe(2);
      expect(refused.stderr, show(refused)).toContain(String(exec.pid));
      // A refused down leaves NAME joinable.
      expect(existsSync(mark(n))).toBe(true);
      const down = w.spawnNsroute(['down', n, '--force']);
      // down --force signals the exec (SIGTERM) and waits for its grace period: let the exec go.
      await waitFor(() => !existsSync(mark(n)), 'down removing the join mark');
      writeFileSync(pause, '');
      expectOk(await down.result);
      const r = await exec.result;
      expect(r.exitCode, show(r)).not.toBe(0);
      expect(existsSync(ran), 'the command must not run').toBe(false);
    } finally {
      writeFileSync(pause, '');
      exec.kill('SIGKILL');
    }
    expect(w.netnsExists(n)).toBe(false);
    expect(readdirSync(join(w.runDir, 'joins'))).toEqual([]);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a NAME whose mark is missing or wrong is joined under the lock, which makes it joinable again', async () => {
    const n = w.name('j3');
    await upWatched(n);
    writeFileSync(mark(n), '1:2\n', { mode: 0o600 });
    const file = marker(w, 'j3-trace');
    const r = await w.nsroute(['exec', n, '--', ...PATH4], { env: { NSROUTE_TRACE: file } });
    expectOk(r);
    expect(r.stdout.trim()).toBe(SLOW);
    expect(existsSync(mark(n))).toBe(true);
    const again = marker(w, 'j3-trace2');
    expectOk(await w.nsroute(['exec', n, '--', 'true'], { env: { NSROUTE_TRACE: again } }));
    const { readFileSync } = await import('node:fs');
    const locks = (f: string) => readFileSync(f, 'utf8').split('\n').filter((l) => l.includes('"ev":"lock"')).length;
    expect(locks(file), 'a wrong mark: under the lock').toBeGreaterThan(0);
    expect(locks(again), 'then without').toBe(0);
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('an exec holding NAME through a join keeps it from a plain down, and NAME works meanwhile', async () => {
    const n = w.name('j4');
    await upWatched(n);
    const [ready, stop] = [marker(w, 'j4-ready'), marker(w, 'j4-stop')];
    const inside = w.spawnNsroute(['exec', n, '--', ...holdScript(ready, stop)], { timeoutMs: 600_000 });
    try {
      await waitForFile(ready);
      const refused = await w.nsroute(['down', n]);
      expect(refused.exitCode, show(refused)).toBe(2);
      expect(refused.stderr, show(refused)).toContain(String(inside.pid));
      const r = await w.nsroute(['exec', n, '--', ...PATH4]);
      expectOk(r);
      expect(r.stdout.trim()).toBe(SLOW);
      writeFileSync(stop, '');
      expectOk(await inside.result);
    } finally {
      writeFileSync(stop, '');
      inside.kill('SIGKILL');
    }
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  // The state an exec checked its settings against must be that of the namespace it joins: one
  // read, then NAME taken down and brought up again through the other uplink, must not be
  // joined as if it were the first (the command would leave by the wrong path).
  it('an exec that read NAME for a join, while NAME was taken down and brought up with other settings, does not join the new one', async () => {
    const j = await pausedJoin('j6', 'join:1', ['--via', SLOW_GW]);
    const { n, pause, exec } = j;
    try {
      expectOk(await w.nsroute(['down', n]));
      expectOk(await w.nsroute(['up', n, '--via', FAST_GW]));
      await waitFor(watcherUp, 'the watcher');
      await expectRefused(j, `${n} is already up with other settings`);
    } finally {
      writeFileSync(pause, '');
      exec.kill('SIGKILL');
    }
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('status and list print a holder whose command is longer than a pipe holds (64 KiB) whole', async () => {
    // nsroute ends by process.exit (main.ts): output a pipe's reader has not taken yet must be
    // waited for, or it is lost (the JSON was cut at 65536 bytes).
    const n = w.name('j5');
    await upWatched(n);
    const [ready, stop] = [marker(w, 'j5-ready'), marker(w, 'j5-stop')];
    // 8 arguments of 100 000 bytes (one may have up to 128 KiB): many times what a pipe holds.
    const long = 'x'.repeat(100_000);
    const inside = w.spawnNsroute(['exec', n, '--', ...holdScript(ready, stop), ...Array<string>(8).fill(long)], { timeoutMs: 600_000 });
    try {
      await waitForFile(ready);
      const status = await w.nsroute(['status', n, '--json']);
      expectOk(status);
      const holders = (JSON.parse(status.stdout) as { holders: { command: string[] }[] }).holders;
      expect(holders.map((h) => h.command.slice(3))).toEqual([Array(8).fill(long)]);
      const list = await w.nsroute(['list', '--json']);
      expectOk(list);
      const listed = (JSON.parse(list.stdout) as { name: string; holders: { command: string[] }[] }[]).find((s) => s.name === n);
      expect(listed?.holders.map((h) => h.command.slice(3))).toEqual([Array(8).fill(long)]);
      const text = await w.nsroute(['status', n]);
      expectOk(text);
      expect(text.stdout.split(long).length).toBe(9);
      expect(text.stdout.endsWith('\n')).toBe(true);
      writeFileSync(stop, '');
      expectOk(await inside.result);
    } finally {
      writeFileSync(stop, '');
      inside.kill('SIGKILL');
    }
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });
});
