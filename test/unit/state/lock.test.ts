import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireHostLock, lockName, withHostLock } from '../../../src/state/lock.js';

// The host lock is an abstract unix socket (a unix socket, not a network change). Each test
// uses its own run dir, hence its own lock name.
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nsroute-lock-'));
  process.env.NSROUTE_RUN_DIR = dir;
});
afterEach(() => {
  delete process.env.NSROUTE_RUN_DIR;
  rmSync(dir, { recursive: true, force: true });
});

// Another process holding the lock until it is killed.
function holder(): Promise<{ kill: () => Promise<void> }> {
  const script = `const s=require('node:net').createServer();s.listen(${JSON.stringify(lockName(dir))},()=>console.log('held'));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () =>
      resolve({
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
  it('differs per run dir', () => {
    expect(lockName('/run/nsroute')).not.toBe(lockName('/tmp/other'));
    expect(lockName('/run/nsroute').startsWith('\0')).toBe(true);
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
    await expect(acquireHostLock({ timeoutMs: 150 })).rejects.toThrow(/timed out/);
    await other.kill();
    const release = await acquireHostLock({ timeoutMs: 0 });
    await release();
  });

  it('is released when the function throws', async () => {
    await expect(withHostLock(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    const release = await acquireHostLock({ timeoutMs: 0 });
    await release();
  });
});
