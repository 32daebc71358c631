// The host lock through the tool runner (src/sys/runner.ts, src/state/lock.ts): exec and
// shell hand the lock file to the runner as its fd 3, so that taking and dropping the lock
// spawns nothing from Node. The lock must behave as with a flock of nsroute's own: exclusive,
// waited for (and the wait killable), let go, and never held by the runner longer than by
// nsroute; the file reaches no other tool.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const have = spawnSync('perl', ['-e', '1']).status === 0;

let base: string;
let lock: string;
let traceFile: string;
beforeEach(() => {
  vi.resetModules(); // a fresh runner (and lock module) per test: the fd goes to runners started later
  base = mkdtempSync(join(tmpdir(), 'nsroute-runner-lock-'));
  process.env.NSROUTE_RUN_DIR = join(base, 'run');
  lock = join(base, 'run', 'lock');
  traceFile = join(base, 'trace');
  process.env.NSROUTE_TRACE = traceFile;
});
afterEach(() => {
  delete process.env.NSROUTE_RUN_DIR;
  delete process.env.NSROUTE_TRACE;
  rmSync(base, { recursive: true, force: true });
});

// Another process's try at the lock: 0 when it got it (and let it go), 1 when it is held.
const tryLock = () => spawnSync('flock', ['-x', '-n', lock, 'true']).status;

// The lock module with the run dir's lock file handed to the runner (as cli.ts does for exec).
async function viaRunner() {
  const lockMod = await import('../../../src/state/lock.js');
  await (await lockMod.acquireHostLock())(); // creates the run dir and lock file, the usual way
  lockMod.openHostLockForRunner();
  const runner = await import('../../../src/sys/runner.js');
  return { ...lockMod, ...runner };
}

const runnerEvents = () =>
  readFileSync(traceFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { ev: string; argv?: string[]; via?: string })
    .filter((e) => e.ev === 'spawn' && e.argv?.[0] === 'flock');

describe.skipIf(!have)('the host lock through the tool runner', () => {
  it('is taken and let go by the runner, exclusively', async () => {
    const { acquireHostLock } = await viaRunner();
    writeFileSync(traceFile, '');
    const release = await acquireHostLock({ timeoutMs: 10_000 });
    expect(tryLock()).toBe(1);
    await release();
    expect(tryLock()).toBe(0);
    // Both through the runner (state/lock.ts's own flock would have no `via`).
    expect(runnerEvents().map((e) => [e.via, ...e.argv!])).toEqual([
      ['runner', 'flock', '-x', '3'],
      ['runner', 'flock', '-u', '3'],
    ]);
  });

  it('waits while another process holds it, the wait ends on a timeout, and it is taken once that process dies', async () => {
    const { acquireHostLock } = await viaRunner();
    const other = spawn('sh', ['-c', `exec 3<>'${lock}'; flock -x 3; echo held; exec sleep 600`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => other.stdout.once('data', r));
    try {
      await expect(acquireHostLock({ timeoutMs: 300 })).rejects.toThrow(/timed out/);
      // The killed wait took nothing: the other process still holds it alone.
      const waiting = acquireHostLock({ timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 200));
      other.kill('SIGKILL');
      const release = await waiting;
      expect(tryLock()).toBe(1);
      await release();
      expect(tryLock()).toBe(0);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('a signal while waiting ends the wait with Interrupted, and the lock is not taken', async () => {
    const { acquireHostLock } = await viaRunner();
    const { Interrupted } = await import('../../../src/errors.js');
    const other = spawn('sh', ['-c', `exec 3<>'${lock}'; flock -x 3; echo held; exec sleep 600`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => other.stdout.once('data', r));
    try {
      const waiting = acquireHostLock({ noticeMs: 60_000 });
      await new Promise((r) => setTimeout(r, 200));
      process.emit('SIGTERM', 'SIGTERM');
      await expect(waiting).rejects.toBeInstanceOf(Interrupted);
    } finally {
      await new Promise((r) => {
        other.once('exit', r);
        other.kill('SIGKILL');
      });
    }
    expect(tryLock()).toBe(0);
  });

  it('reaches no other tool: fd 3 is closed in every job but the lock itself', async () => {
    const { runViaHelper } = await viaRunner();
    const r = (await runViaHelper(['sh', '-c', 'readlink /proc/$$/fd/3 || echo no fd 3'], undefined, false))!;
    expect(r.stdout.trim(), r.stderr).toBe('no fd 3');
    // while the runner itself has it (the lock file, nothing else)
    const runnerPid = Number((await runViaHelper(['sh', '-c', 'echo $PPID'], undefined, false))!.stdout.trim());
    expect(readlinkSync(`/proc/${runnerPid}/fd/3`)).toBe(lock);
  });

  it('is not held by the runner once nsroute lets go of it: the runner closes fd 3 when its input ends, even with a job running', async () => {
    const { acquireHostLock, runViaHelper, dropRunnerLockFd } = await viaRunner();
    await acquireHostLock({ timeoutMs: 10_000 }); // held, through the runner
    const fifo = join(base, 'fifo');
    spawnSync('mkfifo', [fifo]);
    let ended = false;
    const long = runViaHelper(['sh', '-c', `read x < '${fifo}'`], undefined, false)!.finally(() => (ended = true));
    // Ends the job (also when the test fails): a writer for its FIFO, once it waits there.
    const release = () => {
      try {
        const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        writeSync(fd, 'go\n');
        closeSync(fd);
        return true;
      } catch {
        return false; // (ENXIO: no reader yet)
      }
    };
    try {
      // nsroute "dies": its input to the runner ends, and its own fd on the file goes.
      dropRunnerLockFd();
      for (const fd of readdirSync('/proc/self/fd').map(Number)) {
        try {
          if (readlinkSync(`/proc/self/fd/${fd}`) === lock) closeSync(fd);
        } catch {
          /* gone meanwhile */
        }
      }
      // The lock is free while the job still runs in the runner.
      await vi.waitFor(() => expect(tryLock()).toBe(0), { timeout: 30_000, interval: 50 });
      expect(ended).toBe(false);
    } finally {
      await vi.waitFor(() => expect(release()).toBe(true), { timeout: 30_000, interval: 50 });
    }
    expect((await long).exitCode).toBe(0);
  });
});
