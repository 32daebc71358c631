// Writing nsroute's own files outside its directories: the sudoers drop-in and the entry
// point. Never through a symlink, never over a file that is not nsroute's (recognised by its
// header line), atomically (temp file in the same directory, checked, then renamed), and only
// into directories nobody but root can change.
import { closeSync, constants, fchmodSync, fchownSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { HostError, UserError } from '../errors.js';
import { unsafeAncestor, unsafeOwnerOrMode } from '../sys/fsx.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

// Every directory from / to `dir` is root's and not writable by others (sticky /tmp excepted
// above the last one), and `dir` itself is not a symlink.
export function requireTrustedDir(dir: string, what: string): void {
  const parts = dir.split(sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = sep + parts.slice(0, i).join(sep);
    const st = lstatSync(p);
    if (st.isSymbolicLink() && i === parts.length) throw new UserError(`${what}: ${p} is a symbolic link`, `make ${p} a real directory`);
    const s = st.isSymbolicLink() ? statSync(p) : st;
    const why = i === parts.length ? unsafeOwnerOrMode(s) : unsafeAncestor(s);
    if (why) throw new UserError(`${what}: directory ${p} ${why}`, `chown root ${p}; chmod go-w ${p}`);
  }
}

// Who owns the file at `path` now: absent, nsroute's (starts with a line of `header`), or
// something else (refused: nsroute never replaces or removes what it did not write).
function existing(path: string, header: string): 'absent' | 'ours' {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
  if (st.isSymbolicLink()) throw new UserError(`${path} is a symbolic link; nsroute does not write through it`, `remove it if it is not yours (rm ${path})`);
  if (!st.isFile()) throw new UserError(`${path} is not a regular file`, 'move it away');
  const fd = openSync(path, constants.O_RDONLY | O_NOFOLLOW);
  let text: string;
  try {
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  if (!text.split('\n').slice(0, 2).includes(header)) {
    throw new UserError(`${path} exists and is not nsroute's (no "${header.slice(0, 40)}..." line)`, 'move it away, or choose another path');
  }
  return 'ours';
}

export async function installOwnFile(path: string, text: string, mode: number, header: string, opts: { mkdir?: boolean; check?: (tmp: string) => Promise<void>; what: string }): Promise<void> {
  const dir = dirname(path);
  if (opts.mkdir) mkdirSync(dir, { recursive: true, mode: 0o755 });
  requireTrustedDir(dir, opts.what);
  existing(path, header);
  // A leading dot and a dot inside: sudo's includedir skips such names, so a temp drop-in is
  // never read half-written or unchecked.
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  rmSync(tmp, { force: true });
  let fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    fchownSync(fd, 0, 0);
    fchmodSync(fd, mode);
    const buf = Buffer.from(text);
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    await opts.check?.(tmp);
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    rmSync(tmp, { force: true });
    if (e instanceof UserError || e instanceof HostError) throw e;
    throw new HostError(`cannot write ${path}: ${(e as Error).message}`);
  }
}

// Removes the file when it is nsroute's; true when something was removed.
export function removeOwnFile(path: string, header: string): boolean {
  if (existing(path, header) === 'absent') return false;
  unlinkSync(path);
  return true;
}
