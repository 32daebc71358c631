// The host lock and the watcher lock (src/state/lock.ts): only root can take them, the kernel
// releases them when their holder dies, a signal ends a command that waits for one, and a
// persistent namespace has exactly one watcher whatever crashes.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, SLOW_GW, waitFor, type Snapshot, type World } from '../world/world.js';
import { expectOk, marker, show, useWorld, waitForFile } from '../world/helpers.js';
import { kindOf, nsrouteProcesses } from '../world/procs.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const ROUTE = ['--via', SLOW_GW, '--dns', DNS_SERVER];
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

// A process of the test's own, as nobody, in the fake host's network namespace (where the old
// abstract-socket lock lived). Resolves once it printed its first line.
function asNobody(argv: string[]): Promise<{ child: ChildProcess; first: string }> {
  const child = spawn('nsenter', [`--net=/run/netns/${w.host}`, ...NOBODY, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve({ child, first: out.split('\n')[0]! });
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`squatter exited ${code}: ${out}`)));
  });
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    child.once('exit', () => r());
    child.kill('SIGKILL');
  });
}

describe('the host lock', () => {
  it('is a 0600 root file', async () => {
    // gc takes it (list and status read without it while nobody holds it).
    expectOk(await w.nsroute(['gc']));
    const st = statSync(join(w.runDir, 'lock'));
    expect(st.uid).toBe(0);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('cannot be squatted by an unprivileged user: neither the file nor the old abstract socket blocks nsroute', async () => {
    expectOk(await w.nsroute(['gc']));
    const lock = join(w.runDir, 'lock');
    // The lock file: nobody cannot even open it, so cannot flock it.
    const r = await w.inHost([...NOBODY, 'flock', '-n', lock, 'true']);
    expect(r.exitCode, show(r)).not.toBe(0);
    // The abstract socket name the old lock used, bound first by nobody and held.
    const oldName = `\0nsroute-lock-${createHash('sha256').update(w.runDir).digest('hex').slice(0, 24)}`;
    const squat = await asNobody([process.execPath, '-e', `require('node:net').createServer().listen(${JSON.stringify(oldName)}, () => console.log('bound'))`]);
    try {
      expect(squat.first).toBe('bound');
      const list = await w.nsroute(['list', '--json'], { timeoutMs: 20_000 });
      expect(list.signal, show(list)).toBeNull();
      expectOk(list);
      const n = w.name('sq1');
      const exec = await w.nsroute(['exec', n, ...ROUTE, '--', 'true'], { timeoutMs: 30_000 });
      expectOk(exec);
    } finally {
      await killed(squat.child);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a signal while waiting for it ends the command at once with one line, 128+N, and nothing changed', async () => {
    const holderName = w.name('lk1');
    const pause = marker(w, 'lk1-pause');
    // `up` stops after its first step, holding the host lock.
    const holder = w.spawnNsroute(['up', holderName, ...ROUTE, '--no-watch'], { env: { NSROUTE_TEST_PAUSE: `apply:0:${pause}` }, timeoutMs: 120_000 });
    try {
      await waitForFile(`${pause}.reached`, 60_000);
      const cases: [string[], NodeJS.Signals, number][] = [
        [['exec', w.name('lk2'), ...ROUTE, '--', 'true'], 'SIGTERM', 143],
        [['exec', w.name('lk3'), ...ROUTE, '--', 'true'], 'SIGINT', 130],
        [['exec', w.name('lk4'), ...ROUTE, '--', 'true'], 'SIGHUP', 129],
        [['down', holderName], 'SIGTERM', 143],
        [['list'], 'SIGINT', 130],
      ];
      for (const [args, sig, code] of cases) {
        const waiter = w.spawnNsroute(args, { timeoutMs: 60_000 });
        // After a second it says who it waits for: the paused `up`.
        await waitFor(() => waiter.stderr().includes('waiting'), `${args[0]} to say it waits`, 30_000);
        expect(waiter.stderr()).toBe(`nsroute: waiting for the nsroute host lock held by pid ${holder.pid} (nsroute up ${holderName} ${ROUTE.join(' ')} --no-watch)\n`);
        waiter.kill(sig);
        // It ends while the lock is still held (the holder is still paused).
        const r = await waiter.result;
        expect(existsSync(pause), 'the holder is still paused').toBe(false);
        expect(r.exitCode, show(r)).toBe(code);
        expect(r.stderr.trimEnd().split('\n').slice(1), show(r)).toEqual([`nsroute: interrupted by ${sig} while waiting for the nsroute host lock; nothing was changed`]);
      }
      for (const n of ['lk2', 'lk3', 'lk4']) {
        expect(w.netnsExists(w.name(n))).toBe(false);
        expect(existsSync(join(w.runDir, 'ns', w.name(n)))).toBe(false);
      }
    } finally {
      writeFileSync(pause, '');
    }
    expectOk(await holder.result);
    expectOk(await w.nsroute(['down', holderName]));
    expect(await w.snapshot()).toEqual(clean);
  });
});

// This world's host watchers: `nsroute watch` (no names) run with this world's run dir.
function watchers(): number[] {
  return nsrouteProcesses(w.runDir)
    .filter((p) => kindOf(p) === 'watch')
    .map((p) => p.pid);
}

describe('the watcher of the persistent namespaces', () => {
  it('stays one after `up` is SIGKILLed between starting it and recording it, and gc', async () => {
    const n = w.name('wk1');
    const r = await w.nsroute(['up', n, ...ROUTE], { env: { NSROUTE_TEST_CRASH: 'watcher:0' } });
    expect(r.signal, show(r)).toBe('SIGKILL');
    await waitFor(() => watchers().length === 1, 'the first watcher to run', 30_000);
    // It is up (state written before the watcher started); gc finds the watcher by its lock.
    const gc = await w.nsroute(['gc', '--json']);
    expectOk(gc);
    // A second watcher, if any started, gives up at once: wait until only one is left.
    await waitFor(() => watchers().length === 1, 'one watcher', 30_000).catch(() => undefined);
    // ...and it stays one: a second gc finds the running one by its lock.
    expectOk(await w.nsroute(['gc']));
    await new Promise((res) => setTimeout(res, 2000));
    expect(watchers(), 'host watchers').toHaveLength(1);
    const recorded = (JSON.parse(readFileSync(join(w.runDir, 'watch.lock'), 'utf8')) as { pid?: number }).pid;
    expect(recorded).toBe(watchers()[0]);
    expectOk(await w.nsroute(['down', n]));
    await waitFor(() => watchers().length === 0, 'the watcher to end with its namespace', 30_000);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a second `nsroute watch` (and `watch NAME` of a NAME it covers) exits at once; two `up`s at once start one', async () => {
    const [n, m] = [w.name('wk2'), w.name('wk3')];
    const ups = await Promise.all([w.nsroute(['up', n, ...ROUTE]), w.nsroute(['up', m, ...ROUTE])]);
    ups.forEach(expectOk);
    try {
      await waitFor(() => watchers().length === 1 && readFileSync(join(w.runDir, 'watch.lock'), 'utf8').includes('"pid"'), 'one watcher with its lock', 30_000);
      const second = await w.nsroute(['watch'], { timeoutMs: 30_000 });
      expectOk(second);
      expect(second.stderr).toBe(`nsroute: the namespaces are watched already by pid ${watchers()[0]}\n`);
      const named = await w.nsroute(['watch', n], { timeoutMs: 30_000 });
      expectOk(named);
      expect(named.stderr).toBe(`nsroute: ${n} is watched already by pid ${watchers()[0]}\n`);
      expect(watchers()).toHaveLength(1);
    } finally {
      expectOk(await w.nsroute(['down', n]));
      expectOk(await w.nsroute(['down', m]));
    }
    await waitFor(() => watchers().length === 0, 'the watcher to end with the last namespace', 30_000);
    expect(await w.snapshot()).toEqual(clean);
  });
});
