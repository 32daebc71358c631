import { createHash } from 'node:crypto';
import net from 'node:net';
import { runDir } from './paths.js';

// One host-wide lock around every change of nsroute state: allocation of subnets/tables and
// the shared objects (nft table, uplink tables, forwarding) are decided from all namespaces
// at once, so different NAMEs must not plan concurrently. Critical sections are short
// (tens of ms); commands run outside the lock.
//
// The lock is an abstract unix socket: exactly one bind() of a name succeeds, and the kernel
// releases it the instant its process dies, SIGKILL included. A lock file (proper-lockfile)
// can only guess that its owner died from a stale mtime, so every command after a crash
// waited at least 5 s, and a holder whose event loop stalled lost the lock while still
// changing the host. Abstract names live in the network namespace of the process; nsroute
// always runs in the host's (the test world gives each fake host its own, with its own run
// dir). The name is derived from the run dir, so two run dirs never share a lock.
export function lockName(dir = runDir()): string {
  return `\0nsroute-lock-${createHash('sha256').update(dir).digest('hex').slice(0, 24)}`;
}

function tryBind(name: string): Promise<net.Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (e: NodeJS.ErrnoException) => {
      server.close();
      if (e.code === 'EADDRINUSE') resolve(undefined);
      else reject(e);
    });
    server.listen({ path: name, exclusive: true }, () => {
      // Never keep nsroute alive just for the lock, and never accept connections.
      server.unref();
      resolve(server);
    });
  });
}

export interface LockOptions {
  // Give up after this long (default: wait as long as it takes; each holder is short-lived).
  timeoutMs?: number;
}

export async function acquireHostLock(opts: LockOptions = {}): Promise<() => Promise<void>> {
  const name = lockName();
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  let delay = 2;
  for (;;) {
    const server = await tryBind(name);
    if (server) return () => new Promise<void>((r) => server.close(() => r()));
    if (Date.now() > deadline) throw new Error('timed out waiting for the nsroute host lock');
    // Jittered backoff: 50 processes polling must not march in step.
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 1.5, 25);
  }
}

export async function withHostLock<T>(fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const release = await acquireHostLock(opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}
