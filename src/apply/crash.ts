import { existsSync, writeFileSync } from 'node:fs';
import { callerContext } from '../policy/context.js';

// Test-only fault injection, unset in real use (test/integration/faults.test.ts):
// NSROUTE_TEST_CRASH=PHASE:K makes nsroute SIGKILL itself right after step K of PHASE
// ('apply': bringing a namespace up; 'undo': teardown or rollback, K being the step's index
// in the journal), to prove that a crash at any step boundary is cleaned up by `nsroute gc`.
// NSROUTE_TEST_PAUSE=PHASE:K:FILE makes it stop there, create FILE.reached, and go on once
// FILE exists, so a test can send signals in the middle of a teardown.
// NSROUTE_TEST_CRASH=watcher:0 kills `up` (or gc) right after it spawned the host's watcher,
// before that has taken its lock (gc must not start a second one).
// 'join:0': an exec that joined NAME without the lock, right before it starts the command's
// wrapper (test/integration/joins.test.ts). 'join:1': an exec that read NAME's state for such a
// join and checked its settings, before it reads which namespace is NAME's (joins.test.ts: a
// `down` and an `up` with other settings in between must not be joined).
// 'watch:0': a watcher that has looked whether what an event concerns is broken, before it acts
// on what it saw (test/integration/systemd.test.ts: a loss while it looks is not forgotten).
// 'state:K' (pause only, pauseNow): the K-th state file this process writes (from 0), after the
// run dir's generation moved on and before the new file is in place (test/integration/races.test.ts:
// a reader without the lock at that moment must not keep what it read).
// 'release:0': an exec whose command ended, after it started the teardown's read of the host
// and before it takes the lock to leave (test/integration/spawns.test.ts: a take of the lock
// in between makes the teardown read again).
// 'plan:0': a create that planned from the host facts it read before the lock, before it takes
// the lock (spawns.test.ts: a take of the lock in between makes it plan again under the lock).
export type CrashPhase = 'apply' | 'undo' | 'join' | 'watch' | 'release' | 'plan';

// Inert for a user who entered through sudo (policy/entry.ts also removes the variables).
const hooksOff = (): boolean => callerContext() !== undefined;

export function crashNow(point: 'watcher:0'): void {
  if (hooksOff()) return;
  if (process.env.NSROUTE_TEST_CRASH === point) process.kill(process.pid, 'SIGKILL');
}

// NSROUTE_TEST_PAUSE names PHASE:K: the file to wait for, once FILE.reached is made.
function pausedAt(phase: string, k: number): string | undefined {
  const pause = process.env.NSROUTE_TEST_PAUSE;
  const at = `${phase}:${k}:`;
  if (!pause?.startsWith(at)) return undefined;
  const file = pause.slice(at.length);
  writeFileSync(`${file}.reached`, '');
  return file;
}

// The same pause, for code that cannot await (a state file's write): the thread sleeps.
export function pauseNow(phase: 'state', k: number): void {
  if (hooksOff()) return;
  const file = pausedAt(phase, k);
  if (file === undefined) return;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(file)) Atomics.wait(cell, 0, 0, 20);
}

export async function crashPoint(phase: CrashPhase, k: number): Promise<void> {
  if (hooksOff()) return;
  const crash = process.env.NSROUTE_TEST_CRASH;
  if (crash && crash === `${phase}:${k}`) process.kill(process.pid, 'SIGKILL');
  const file = pausedAt(phase, k);
  if (file !== undefined) while (!existsSync(file)) await new Promise((r) => setTimeout(r, 20));
}
