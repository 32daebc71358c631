// What a lock file says about its holder: read by lock.ts (a waiter's message, the host lock's
// generation at a take) and, through hostLockGeneration, by every reader without the lock
// (store.ts, views.ts, hostfacts.ts). Apart from lock.ts so that store.ts, which lock.ts
// imports, can read it too.
import { readFileSync } from 'node:fs';
import { paths } from './paths.js';

// Who holds a lock, written into its file once taken (for the message of a waiter).
// gen: a counter bumped at every take and every release of the host lock, and held: whether
// a holder is inside (left true by one that died inside). What lets a command read the host
// before it has the lock and use that read only if nobody changed anything meanwhile
// (hostLockGeneration).
export interface HolderInfo {
  pid: number;
  startTime: number;
  argv: string[];
  gen?: number;
  held?: boolean;
}

export function readLockInfo(path: string): HolderInfo | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    // Empty: never taken (lock.ts recordHolder never empties a record it rewrites).
    if (text === '') return { pid: 0, startTime: 0, argv: [], gen: 0, held: false };
    return JSON.parse(text) as HolderInfo;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? { pid: 0, startTime: 0, argv: [], gen: 0, held: false } : undefined;
  }
}

// The host lock's generation when nobody holds it; undefined while a holder is inside (or
// died inside), or when it cannot be read. Equal to the `genBefore` of a later take of the
// lock exactly when no other take happened in between.
export function hostLockGeneration(): number | undefined {
  const h = readLockInfo(paths.lock());
  if (!h) return undefined;
  return h.held === false && Number.isSafeInteger(h.gen) ? h.gen : undefined;
}
