import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, renameSync, rmSync, unlinkSync, writeSync, existsSync, readdirSync, rmdirSync, copyFileSync, appendFileSync, type Stats } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { statSync } from 'node:fs';
import { HostError, UserError } from '../errors.js';

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_NONBLOCK } = constants;

// What an errno means to someone fixing it (a bare `ENOSPC` helps nobody).
export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case 'ENOSPC':
      return 'no space left on device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'EROFS':
      return 'read-only file system';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EIO':
      return 'I/O error';
    case 'ENOTDIR':
      return 'a path component is not a directory';
    case 'EISDIR':
      return 'is a directory';
    case 'ELOOP':
      return 'is a symbolic link';
    default:
      return err?.code ?? (err as Error)?.message ?? String(e);
  }
}

// writeSync may write less than asked (a disk filling up): loop until all of it is written,
// so the error surfaces instead of a silently torn file.
export function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

// A write of nsroute's own files failed (disk full, read-only, I/O error): says which file
// and why in one line; `cause` keeps the errno.
export class WriteFailed extends HostError {
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`cannot write ${path}: ${errnoText(cause)}`);
    this.cause = cause;
  }
}

// File writes for state and system files. Writes go through temp file + rename, so a reader
// without the lock never sees half-written JSON; the rename replaces a symlink at `path`
// instead of writing through it, and the temp file is never followed (O_EXCL|O_NOFOLLOW).
// The mode is set with fchmod, so no umask can widen it. A failed write leaves no temp file
// behind (on a full disk it would hold the space the rollback may need).
export function writeFileAtomic(path: string, text: string, mode = 0o644, dirMode = 0o755): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: dirMode });
  } catch (e) {
    throw new WriteFailed(dirname(path), e);
  }
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number;
  try {
    rmSync(tmp, { force: true }); // a leftover of an earlier process with this pid
    fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  } catch (e) {
    throw new WriteFailed(path, e);
  }
  try {
    fchmodSync(fd, mode);
    writeAll(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new WriteFailed(path, e);
  }
}

// Append one line and fsync: journal entries must be on disk before the change they announce.
// Never through a symlink, never to a file others could have written (the journal decides
// what gc deletes). sync false: what only this boot's processes read (the page cache is shared;
// a crash of nsroute loses nothing written, only a crash of the machine does, and that ends
// what the line is about too).
export function appendLineSync(path: string, line: string, mode = 0o600, sync = true): void {
  let fd: number;
  try {
    fd = openSync(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw untrusted(path, 'is a symbolic link');
    throw new WriteFailed(path, e);
  }
  try {
    const why = unsafeFile(fstatSync(fd));
    if (why) throw untrusted(path, why);
    fchmodSync(fd, mode);
    writeAll(fd, line.endsWith('\n') ? line : line + '\n');
    if (sync) fsyncSync(fd);
  } catch (e) {
    if (e instanceof UntrustedFile) throw e;
    throw new WriteFailed(path, e);
  } finally {
    closeSync(fd);
  }
}

// A file or directory of nsroute's state that someone other than root could have written:
// nsroute does not act on it (a planted journal would make gc delete what it names).
export class UntrustedFile extends UserError {
  constructor(
    readonly path: string,
    readonly why: string,
    hint: string,
  ) {
    super(`${path} ${why}; nsroute does not trust it`, hint);
    this.name = 'UntrustedFile';
  }
}

function untrusted(path: string, why: string): UntrustedFile {
  return new UntrustedFile(path, why, `check who changed it, then \`chown root:root ${path} && chmod go-w ${path}\`, or remove it`);
}

// Why a file's owner or mode makes it untrustworthy for root (undefined: it is fine). One
// rule for state files, state dirs and profiles (sys/trusted-file.ts).
export function unsafeOwnerOrMode(st: Stats): string | undefined {
  if (st.uid !== 0) return `is owned by uid ${st.uid}, not root`;
  if (st.mode & 0o002) return 'is writable by everyone';
  if (st.mode & 0o020) return 'is writable by its group';
  return undefined;
}

// The same for a directory above one root trusts: a root-owned sticky directory (/tmp) is
// fine there, since only an entry's owner can rename or remove it (OpenSSH's StrictModes).
export function unsafeAncestor(st: Stats): string | undefined {
  if (st.isDirectory() && st.uid === 0 && st.mode & 0o1000) return undefined;
  return unsafeOwnerOrMode(st);
}

function unsafeFile(st: Stats): string | undefined {
  if (!st.isFile()) return 'is not a regular file';
  return unsafeOwnerOrMode(st);
}

// Reads one of nsroute's state files: undefined when it does not exist; refused when it is a
// symlink, not a regular file, not root's, or writable by group or others.
export function readTrustedFile(path: string, maxBytes = 16 << 20): string | undefined {
  const f = openTrustedFile(path, maxBytes);
  if (!f) return undefined;
  try {
    return f.read();
  } finally {
    f.close();
  }
}

// readTrustedFile in two steps, for a caller that checks something else once it knows the
// file exists (store.ts: the NAME's directory): undefined when it does not exist; read()
// refuses it as readTrustedFile does.
export function openTrustedFile(path: string, maxBytes = 16 << 20): { read: () => string; close: () => void; stats?: Stats } | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      return {
        read: () => {
          throw untrusted(path, 'is a symbolic link');
        },
        close: () => undefined,
      };
    }
    throw e;
  }
  const f: { read: () => string; close: () => void; stats?: Stats } = {
    // stats: the file's, as read() found it.
    read: () => {
      const st = fstatSync(fd);
      f.stats = st;
      const why = unsafeFile(st);
      if (why) throw untrusted(path, why);
      if (st.size > maxBytes) throw untrusted(path, `is larger than ${maxBytes} bytes`);
      // The size fstat gave (readFileSync would fstat again), then on to the end should the
      // file have grown meanwhile.
      let buf = Buffer.allocUnsafe(st.size + 1);
      let len = 0;
      for (;;) {
        if (len === buf.length) {
          if (len > maxBytes) throw untrusted(path, `is larger than ${maxBytes} bytes`);
          const bigger = Buffer.allocUnsafe(len * 2);
          buf.copy(bigger, 0, 0, len);
          buf = bigger;
        }
        const n = readSync(fd, buf, len, buf.length - len, null);
        if (n === 0) break;
        len += n;
      }
      return buf.toString('utf8', 0, len);
    },
    close: () => closeSync(fd),
  };
  return f;
}

// Throws unless path is a directory root owns that nobody else can write, and its ancestors
// cannot be changed under it by others (root's, and not writable by others unless sticky,
// like /tmp: OpenSSH's StrictModes rule). Missing components are created: the last with
// `mode`, any above it 0755, each chmod'ed so umask cannot widen it. `what` names the
// directory in messages ("the run directory").
export function ensureTrustedDir(path: string, mode: number, what: string): void {
  const abs = resolve(path);
  let existing = abs;
  while (!existsLstat(existing)) existing = dirname(existing);
  const real = realpathSync(existing);
  const parts = real.split(sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = sep + parts.slice(0, i).join(sep);
    const st = statSync(p);
    const isTarget = existing === abs && i === parts.length;
    if (!st.isDirectory()) throw new UserError(`${what} ${abs}: ${p} is not a directory`, `remove it, or point nsroute elsewhere`);
    if (isTarget) {
      const why = unsafeOwnerOrMode(st);
      if (why) throw new UserError(`${what} ${abs} ${why}; nsroute keeps root's state there and will not use it`, `\`chown root:root ${abs} && chmod ${(mode & 0o7777).toString(8)} ${abs}\` after checking its contents, or remove it so nsroute creates it afresh`);
    } else {
      const why = unsafeAncestor(st);
      if (why) {
        const which = st.uid === 0 ? 'others can write (and is not sticky)' : why;
        throw new UserError(`${what} ${abs} is inside ${p}, which ${which}; nsroute will not keep root's state there`, `\`${st.uid === 0 ? 'chmod go-w' : 'chown root:root'} ${p}\`, or point nsroute elsewhere`);
      }
    }
  }
  if (existing === abs) return;
  const missing = abs.slice(existing === sep ? 1 : existing.length + 1).split(sep);
  let cur = real;
  for (const [i, part] of missing.entries()) {
    cur = `${cur === sep ? '' : cur}${sep}${part}`;
    const m = i === missing.length - 1 ? mode : 0o755;
    try {
      mkdirSync(cur, { mode: m });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new WriteFailed(cur, e);
      // Made meanwhile by someone else: check it like an existing one.
      return ensureTrustedDir(path, mode, what);
    }
    chmodExact(cur, m);
  }
}

// A subdirectory of a trusted directory (run dir's ns/NAME, lib dir's files/NAME): created
// with `mode` exactly, or refused when it exists as something others could have changed.
export function ensureTrustedSubdir(path: string, mode: number): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    try {
      // Missing parents too, with the same mode (umask can only narrow an explicit mode).
      mkdirSync(path, { mode, recursive: true });
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw new WriteFailed(path, e2);
      return ensureTrustedSubdir(path, mode);
    }
    chmodExact(path, mode);
    return;
  }
  if (st.isSymbolicLink()) throw untrusted(path, 'is a symbolic link');
  if (!st.isDirectory()) throw untrusted(path, 'is not a directory');
  const why = unsafeOwnerOrMode(st);
  if (why) throw untrusted(path, why);
}

// Checks an existing subdirectory the same way, without creating it; false when it is absent.
export function isTrustedSubdir(path: string): boolean {
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) throw untrusted(path, 'is a symbolic link');
    if (!st.isDirectory()) throw untrusted(path, 'is not a directory');
    const why = unsafeOwnerOrMode(st);
    if (why) throw untrusted(path, why);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

function chmodExact(path: string, mode: number): void {
  const fd = openSync(path, O_RDONLY | O_NOFOLLOW);
  try {
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

// Whether anything, a dangling symlink included, is at path.
export function existsLstat(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

// A file under /etc/netns/NAME read back (nsroute's own resolv.conf): only a regular file,
// never through a symlink, never blocking on a FIFO, at most maxBytes. undefined otherwise.
export function readRegularFile(path: string, maxBytes = 1 << 20): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > maxBytes) return undefined;
    return readFileSync(fd, 'utf8');
  } catch {
    return undefined;
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

export { existsSync, mkdirSync, copyFileSync, appendFileSync, unlinkSync };

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
