import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { acquireHostLock, withHostLock } from '../../../src/state/lock.js';
import { Interrupted } from '../../../src/errors.js';

// The host lock is flock(2) on `lock` in the run dir (a file, not a network change). Each
// test uses its own run dir, hence its own lock. Needs root, like nsroute.
let base: string;
let dir: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'nsroute-lock-'));
  dir = join(base, 'run');
  process.env.NSROUTE_RUN_DIR = dir;
});
afterEach(() => {
  delete process.env.NSROUTE_RUN_DIR;
  rmSync(base, { recursive: true, force: true });
});

// Another process holding the lock (the way nsroute holds it: an fd on the lock file) until
// it is killed.
async function holder(): Promise<{ pid: number; kill: () => Promise<void> }> {
  await (await acquireHostLock())(); // creates the run dir and the lock file as nsroute does
  const child = spawn('sh', ['-c', `exec 3<>'${join(dir, 'lock')}'; flock -x 3; echo held; exec sleep 600`], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () =>
      resolve({
        pid: child.pid!,
        kill: () =>
          new Promise((r) => {
            child.once('exit', () => r());
            child.kill('SIGKILL');
          }),
      }),
    );
    child.once('error', reject);
  });
}

describe('host lock', () => {
  it('is a 0600 root file in a 0700 run dir, whatever the umask', async () => {
    const old = process.umask(0);
    try {
      await (await acquireHostLock())();
    } finally {
      process.umask(old);
    }
    expect(statSync(dir).mode & 0o7777).toBe(0o700);
    const st = statSync(join(dir, 'lock'));
    expect(st.mode & 0o7777).toBe(0o600);
    expect(st.uid).toBe(0);
  });

  it('differs per run dir', async () => {
    const release = await acquireHostLock();
    process.env.NSROUTE_RUN_DIR = join(base, 'other');
    const other = await acquireHostLock({ timeoutMs: 5000 });
    await other();
    await release();
  });

  it('excludes a second holder in the same process', async () => {
    const order: string[] = [];
    await Promise.all([
      withHostLock(async () => {
        order.push('a-in');
        await new Promise((r) => setTimeout(r, 50));
        order.push('a-out');
      }),
      new Promise((r) => setTimeout(r, 5)).then(() =>
        withHostLock(async () => {
          order.push('b-in');
        }),
      ),
    ]);
    expect(order).toEqual(['a-in', 'a-out', 'b-in']);
  });

  it('waits while another process holds it, and is free the moment that process is SIGKILLed', async () => {
    const other = await holder();
    await expect(acquireHostLock({ timeoutMs: 300 })).rejects.toThrow(/timed out/);
    await other.kill();
    const release = await acquireHostLock({ timeoutMs: 10_000 });
    await release();
  });

  it('says once who holds it when the wait is long', async () => {
    const other = await holder();
    writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: process.pid, startTime: -1, argv: [] })); // a dead holder: not named
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await expect(acquireHostLock({ timeoutMs: 400, noticeMs: 50 })).rejects.toThrow(/timed out/);
      expect(write.mock.calls.map((c) => String(c[0]))).toEqual(['nsroute: waiting for the nsroute host lock\n']);
    } finally {
      write.mockRestore();
      await other.kill();
    }
  });

  it('a signal while waiting ends the wait with Interrupted, and the lock is not taken', async () => {
    const other = await holder();
    try {
      const waiting = acquireHostLock({ noticeMs: 60_000 });
      await new Promise((r) => setTimeout(r, 100));
      process.emit('SIGTERM', 'SIGTERM');
      await expect(waiting).rejects.toBeInstanceOf(Interrupted);
      expect(process.listenerCount('SIGTERM')).toBe(0);
    } finally {
      await other.kill();
    }
    await (await acquireHostLock({ timeoutMs: 10_000 }))();
  });

  it('is released when the function throws', async () => {
    await expect(withHostLock(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    const release = await acquireHostLock({ timeoutMs: 5000 });
    await release();
  });

  it('refuses a lock file others can open (they could take it)', async () => {
    await (await acquireHostLock())();
    chmodSync(join(dir, 'lock'), 0o644);
    await expect(acquireHostLock()).rejects.toThrow(/lock can be opened by users other than root; nsroute does not trust it/);
  });

  it('refuses a run dir others can write, and one under a world-writable non-sticky dir', async () => {
    await (await acquireHostLock())();
    chmodSync(dir, 0o777);
    await expect(acquireHostLock()).rejects.toThrow(/the run directory .* is writable by everyone/);
    chmodSync(dir, 0o700);
    chmodSync(base, 0o777);
    process.env.NSROUTE_RUN_DIR = join(base, 'fresh');
    await expect(acquireHostLock()).rejects.toThrow(/is inside .*, which others can write \(and is not sticky\)/);
    chmodSync(base, 0o1777);
    await (await acquireHostLock())();
  });
});
