import lockfile from 'proper-lockfile';
import { mkdirSync } from 'node:fs';
import { paths, runDir } from './paths.js';

// One host-wide lock around every change of nsroute state: allocation of subnets/tables and
// the shared objects (nft table, uplink tables, forwarding) are decided from all namespaces
// at once, so different NAMEs must not plan concurrently. Critical sections are short
// (tens of ms); commands run outside the lock.
// proper-lockfile's lock is a directory kept fresh by mtime; a SIGKILLed holder's lock is
// taken over after `stale` ms.
const STALE_MS = 5000;

export async function withHostLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(runDir(), { recursive: true, mode: 0o755 });
  let compromised: Error | undefined;
  const release = await lockfile.lock(runDir(), {
    lockfilePath: paths.lock(),
    realpath: false,
    stale: STALE_MS,
    retries: { retries: 2000, factor: 1.3, minTimeout: 5, maxTimeout: 100, randomize: true },
    // The default throws from a timer and kills the process mid-change (PLATFORM.md).
    onCompromised: (err) => {
      compromised = err;
    },
  });
  try {
    return await fn();
  } finally {
    if (!compromised) await release().catch(() => undefined);
  }
}
