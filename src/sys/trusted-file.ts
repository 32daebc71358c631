import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { UserError } from '../errors.js';
import { unsafeAncestor, unsafeOwnerOrMode } from './fsx.js';

// Files that decide what root does (profiles) are read only when nobody but root can have
// written them: whoever can write a profile chooses root's routing. Problems are UserErrors
// naming the file and the fix.

export const TRUSTED_FILE_MAX = 64 * 1024;

function describeMode(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

// What is wrong with an object root must trust, or undefined (sys/fsx.ts has the rule).
// `stickyOk`: as an ancestor, a root-owned sticky directory (/tmp) is fine.
function untrusted(st: Stats, stickyOk: boolean): string | undefined {
  const why = stickyOk ? unsafeAncestor(st) : unsafeOwnerOrMode(st);
  return why && st.uid === 0 ? `${why} (mode ${describeMode(st)})` : why;
}

// Every directory from / down to the one holding `path` (a real path) must be root's and not
// writable by others (sticky ones excepted), or someone could swap what lies below.
function requireTrustedAncestors(path: string, what: string): void {
  const parts = path.split(sep).filter(Boolean);
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = sep + parts.slice(0, i).join(sep);
    const problem = untrusted(statSync(p), true);
    if (problem) throw new UserError(`${what}: its directory ${p} ${problem}`, `make ${p} root's and not writable by others (chown root ${p}; chmod go-w ${p})`);
  }
}

// The text of a file root acts on, or undefined when it does not exist. Refused (UserError):
// - a directory that holds it and is not root's, or is group/world-writable (checked even when
//   the file is missing: a missing profile means "defaults", and only root may decide that);
// - anything but a regular file: a FIFO would block, a device (/dev/zero) never ends;
// - a dangling symlink (it is not "no profile": the user meant one);
// - a file not owned by root, or writable by group or others, or larger than `max`.
// A symlink is followed when its target passes the same checks, and so does every directory
// on the way to it: configuration managers (NixOS's /etc, stow) link files into /etc, and a
// link in a root-only directory can only have been made by root.
export function readTrustedText(file: string, what: string, max = TRUSTED_FILE_MAX): string | undefined {
  const dir = dirname(file);
  let realDir: string;
  try {
    realDir = realpathSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cannotRead(file, what, e);
  }
  const dirProblem = untrusted(statSync(realDir), false);
  if (dirProblem) throw new UserError(`${what} ${file}: its directory ${dir} ${dirProblem}`, `chown root ${dir}; chmod go-w ${dir}`);
  requireTrustedAncestors(realDir, `${what} ${file}`);
  // Also the directories as named, when a symlink on the way (/etc/nsroute -> ...) sits in one.
  if (realDir !== resolve(dir)) requireTrustedAncestors(resolve(dir), `${what} ${file}`);

  let link: Stats;
  try {
    link = lstatSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw cannotRead(file, what, e);
  }
  let target = file;
  if (link.isSymbolicLink()) {
    try {
      target = realpathSync(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new UserError(`${what} ${file} is a symlink to a file that does not exist`, `fix the link, or remove it to use no ${what}`);
      throw cannotRead(file, what, e);
    }
    requireTrustedAncestors(target, `${what} ${file} (a symlink to ${target})`);
  }

  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
    fd = openSync(target, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw cannotRead(file, what, e);
  }
  try {
    const st = fstatSync(fd);
    const shown = target === file ? file : `${file} (a symlink to ${target})`;
    if (!st.isFile()) {
      throw new UserError(`${what} ${shown} is not a regular file (${kindOf(st)})`, `replace it with a regular file, or remove it to use no ${what}`);
    }
    const problem = untrusted(st, false);
    if (problem) throw new UserError(`${what} ${shown} ${problem}`, `only root may be able to change it: chown root ${target}; chmod go-w ${target}`);
    if (st.size > max) throw new UserError(`${what} ${shown} is larger than ${max} bytes`, `a ${what} is a few lines; check that this is the right file`);
    const buf = Buffer.alloc(max + 1);
    let len = 0;
    for (;;) {
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0) break;
      len += n;
      if (len > max) throw new UserError(`${what} ${shown} is larger than ${max} bytes`, `a ${what} is a few lines; check that this is the right file`);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, len));
    } catch {
      throw new UserError(`${what} ${shown} is not UTF-8 text`, 'save it as UTF-8');
    }
  } finally {
    closeSync(fd);
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

function cannotRead(file: string, what: string, e: unknown): UserError {
  const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  return new UserError(`${what} ${file} cannot be read: ${code}`, 'fix its permissions, or move it away');
}
