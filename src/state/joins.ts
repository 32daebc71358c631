import { closeSync, constants, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isSameProcessAlive } from '../sys/proc.js';
import { isTrustedSubdir, listDir, readTrustedFile } from '../sys/fsx.js';
import { ensureRunSubdir } from './dirs.js';
import { paths, runDir } from './paths.js';
import type { Holder } from './store.js';

// Lock-free joins (issue 11): a hot exec into a persistent NAME that the host watcher keeps
// right takes no host lock. Two files make that exact against a `down`/teardown/gc:
//
// - The join mark, ns/NAME/join, holds the identity of NAME's namespace (netns inode and nsfs
//   ctime, from the journal). Written under the lock while NAME is up and persistent; removed
//   under the lock by anything that is about to end NAME (down, teardown, gc) BEFORE it looks
//   for processes and holders. Removing it is the "leaving" mark.
// - A joining exec records itself in RUN/joins/NAME.PID.START (a holder, like the state's,
//   but written without the lock) before it starts its command.
//
// The command's wrapper (sys/wrapper.ts) checks the mark from inside the namespace, right
// before it runs the command. So either the check came first, and the wrapper was inside (and
// its holder record written) before the teardown looked: the teardown finds and ends it, or
// (down without --force) refuses; or the teardown removed the mark first, and the wrapper
// refuses to run the command (exit 125). A join never runs a command in a NAME whose teardown
// has already looked.

export function joinMarkPath(name: string): string {
  return join(paths.nsDir(name), 'join');
}

function joinsDir(): string {
  return join(runDir(), 'joins');
}

// What the mark holds for a namespace owned as `owner` (journal.ts netnsOwnership).
export function joinKey(owner: { ino: number; ctime?: string }): string {
  return `${owner.ino}:${owner.ctime ?? ''}`;
}

// By rename, so that the wrapper's `read` never sees a torn line; not fsynced: it matters only
// to processes running now. Never through a symlink (the temp file is O_EXCL|O_NOFOLLOW, the
// rename replaces whatever is at `path`).
function writeSmall(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

// Caller holds the host lock; NAME is up and persistent. A mark that cannot be written only
// means execs take the lock.
export function openJoins(name: string, owner: { ino: number; ctime?: string } | undefined): void {
  if (!owner) return;
  try {
    writeSmall(joinMarkPath(name), joinKey(owner) + '\n');
  } catch {
    /* no lock-free joins for NAME */
  }
}

// Caller holds the host lock, before it looks for NAME's processes and holders. Returns whether
// a mark was there.
export function closeJoins(name: string): boolean {
  try {
    rmSync(joinMarkPath(name));
    return true;
  } catch {
    return false;
  }
}

// The mark as it is now (undefined: none, or not root's alone).
export function readJoinMark(name: string): string | undefined {
  try {
    return readTrustedFile(joinMarkPath(name), 256)?.trim();
  } catch {
    return undefined;
  }
}

function recordPath(name: string, h: Pick<Holder, 'pid' | 'startTime'>): string {
  return join(joinsDir(), `${name}.${h.pid}.${h.startTime}`);
}

// A lock-free exec's holder record. Returns the function that removes it.
export function recordJoin(name: string, h: Holder): () => void {
  ensureRunSubdir('joins');
  const path = recordPath(name, h);
  writeSmall(path, JSON.stringify(h) + '\n');
  return () => rmSync(path, { force: true });
}

// The live lock-free execs in NAME (records of dead ones are ignored, and removed by gc).
export function joinHolders(name: string): Holder[] {
  return readJoins(name).get(name) ?? [];
}

// The same for every NAME at once, from one listing of the records (list and status at N
// NAMEs: one readdir, not N).
export function joinHoldersByName(): Map<string, Holder[]> {
  return readJoins();
}

function readJoins(only?: string): Map<string, Holder[]> {
  const out = new Map<string, Holder[]>();
  const dir = joinsDir();
  if (!isTrustedSubdir(dir)) return out;
  for (const f of listDir(dir)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9_-]*)\.(\d+)\.(\d+)$/.exec(f);
    if (!m || (only !== undefined && m[1] !== only)) continue;
    try {
      const h = JSON.parse(readTrustedFile(join(dir, f), 64 << 10) ?? 'null') as Holder | null;
      if (h && h.pid === Number(m[2]) && h.startTime === Number(m[3]) && isSameProcessAlive(h.pid, h.startTime)) {
        const list = out.get(m[1]!) ?? [];
        list.push({ ...h, kind: 'exec' });
        out.set(m[1]!, list);
      }
    } catch {
      /* not root's alone, or torn: not a holder */
    }
  }
  return out;
}

// gc: records whose exec is gone (SIGKILLed before it could remove its own), and the temp
// files of records such an exec was writing (NAME.PID.START.tmp-PID, writeSmall).
export function removeDeadJoins(): void {
  const dir = joinsDir();
  if (!isTrustedSubdir(dir)) return;
  for (const f of listDir(dir)) {
    const m = /^[A-Za-z0-9][A-Za-z0-9_-]*\.(\d+)\.(\d+)(?:\.tmp-\d+)?$/.exec(f);
    if (m && !isSameProcessAlive(Number(m[1]), Number(m[2]))) rmSync(join(dir, f), { force: true });
  }
}
