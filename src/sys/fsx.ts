import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync, existsSync, readdirSync, rmdirSync, copyFileSync, appendFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { statSync } from 'node:fs';

// File writes for state and system files. Writes go through temp file + rename, so a reader
// without the lock never sees half-written JSON.
export function writeFileAtomic(path: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

// Append one line and fsync: journal entries must be on disk before the change they announce.
export function appendLineSync(path: string, line: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'a', 0o600);
  try {
    writeSync(fd, line.endsWith('\n') ? line : line + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function readTextIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export function removeIfExists(path: string): void {
  rmSync(path, { force: true, recursive: true });
}

export function removeDirIfEmpty(path: string): void {
  try {
    rmdirSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
  }
}

export function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export { existsSync, mkdirSync, copyFileSync, appendFileSync };

// /run/netns/NAME is a live namespace only while an nsfs mount sits on it (its device then
// differs from the directory's). A plain file there is a dead leftover, e.g. after a reboot
// with /run on disk, and blocks `ip netns add NAME`.
export function isDeadNetnsFile(path: string): boolean {
  try {
    return statSync(path).dev === statSync(dirname(path)).dev;
  } catch {
    return false;
  }
}
