import { spawn } from 'node:child_process';
import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { HostError, Interrupted, UserError } from '../errors.js';
import { UntrustedFile } from '../sys/fsx.js';
import { isSameProcessAlive, processStartTime } from '../sys/proc.js';
import { ensureRunDir } from './dirs.js';
import { callerContext } from '../policy/context.js';
import { paths } from './paths.js';
import { beginStateSnapshot } from './store.js';
import { trace } from '../sys/trace.js';

// One host-wide lock around every change of nsroute state: allocation of subnets/tables and
// the shared objects (nft table, uplink tables, forwarding) are decided from all namespaces
// at once, so different NAMEs must not plan concurrently. Critical sections are short
// (tens of ms); commands run outside the lock.
//
// The lock is flock(2) on `lock` in the run dir. Only root can take it: the file is 0600 in a
// root-only directory, so nobody else can even open it (an abstract unix socket, used before,
// has a name anyone can compute and bind first, which stopped every nsroute command). The
// kernel releases it the instant its holder dies, SIGKILL included: no stale lock, no waiting
// for an mtime to age (proper-lockfile). Each run dir has its own (the test world gives
// every fake host its own run dir).
//
// Node has no flock(), so `flock` (util-linux) takes it for us: nsroute opens the file
// (Node opens with O_CLOEXEC, so no other child ever inherits it) and hands it to
// `flock -x 3` as fd 3. A flock belongs to the open file description both fds share: once
// the child exits 0, nsroute's fd holds the lock until nsroute closes it or dies. The
// waiting happens in the child, so nsroute's event loop stays free: a signal while waiting
// kills the child and ends the command at once, with nothing changed.

const { O_RDWR, O_CREAT, O_NOFOLLOW } = constants;
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface LockOptions {
  // Give up after this long (default: wait as long as it takes; each holder is short-lived).
  timeoutMs?: number;
  // After this long without the lock, say once on stderr who holds it (default 1 s).
  noticeMs?: number;
  // A teardown that must run to the end (an exec leaving NAME after its command ended): a
  // signal while waiting does not abandon it (the exec has already answered it by passing it
  // on to its command). The waiting flock gets its own session, so a terminal's ^C does not
  // reach it either.
  uninterruptible?: boolean;
}

// Who holds a lock, written into its file once taken (for the message of a waiter).
// gen: a counter bumped at every take and every release of the host lock, and held: whether
// a holder is inside (left true by one that died inside). What lets a command read the host
// before it has the lock and use that read only if nobody changed anything meanwhile
// (hostLockGeneration).
interface HolderInfo {
  pid: number;
  startTime: number;
  argv: string[];
  gen?: number;
  held?: boolean;
}

// Opens (creating it 0600) a lock file that must be root's alone: a lock file someone else
// can open is a lock someone else can take.
function openLockFile(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new UntrustedFile(path, 'is a symbolic link', `remove it (\`rm ${path}\`)`);
    if (code === 'EACCES') throw new UserError(`cannot open the nsroute lock ${path}: permission denied`, 'nsroute needs root; run it with sudo');
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== 0 || st.mode & 0o077) {
      const why = !st.isFile() ? 'is not a regular file' : st.uid !== 0 ? `is owned by uid ${st.uid}, not root` : 'can be opened by users other than root';
      throw new UntrustedFile(path, why, `remove it (\`rm ${path}\`) while no nsroute command runs`);
    }
    fchmodSync(fd, 0o600);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

function describeHolder(path: string): string {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as HolderInfo;
    if (h.held !== false && Number.isInteger(h.pid) && isSameProcessAlive(h.pid, h.startTime)) {
      const args = h.argv.slice(2).join(' ');
      return ` held by pid ${h.pid} (nsroute ${args.length > 60 ? `${args.slice(0, 57)}...` : args})`;
    }
  } catch {
    /* not written yet, or torn: say less */
  }
  return '';
}

function recordHolder(fd: number, extra: Pick<HolderInfo, 'gen' | 'held'> = {}): void {
  const info: HolderInfo = { pid: process.pid, startTime: processStartTime(process.pid) ?? 0, argv: process.argv, ...extra };
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, JSON.stringify(info) + '\n', 0);
  } catch {
    /* informational only (a full disk must not stop nsroute from cleaning up) */
  }
}

// Takes flock(2) on `path` (created 0600 if missing). wait: block until it is free (a signal
// meanwhile throws Interrupted); otherwise return undefined at once when it is taken. Returns
// the fd holding the lock: closing it releases it.
export function lockFile(
  path: string,
  opts: LockOptions & { wait: boolean; what: string; taken?: (prev: HolderInfo | undefined) => Pick<HolderInfo, 'gen' | 'held'> },
): Promise<number | undefined> {
  const fd = openLockFile(path);
  return new Promise((resolve, reject) => {
    const child = spawn('flock', opts.wait ? ['-x', '3'] : ['-x', '-n', '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
      detached: callerContext() !== undefined || opts.uninterruptible === true,
    });
    let stderr = '';
    let interrupted: NodeJS.Signals | undefined;
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => (stderr += d));
    const onSignal = (sig: NodeJS.Signals) => {
      interrupted ??= sig;
      child.kill('SIGKILL');
    };
    if (!opts.uninterruptible) for (const sig of SIGNALS) process.on(sig, onSignal);
    const timers: NodeJS.Timeout[] = [];
    if (opts.timeoutMs !== undefined) {
      timers.push(
        setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs),
      );
    }
    if (opts.wait) {
      timers.push(setTimeout(() => process.stderr.write(`nsroute: waiting for ${opts.what}${describeHolder(path)}\n`), opts.noticeMs ?? 1000));
    }
    child.once('error', (e) => (spawnError = e));
    child.once('close', (code, signal) => {
      for (const sig of SIGNALS) process.off(sig, onSignal);
      // A terminal's ^C reaches the whole process group, flock too, maybe before nsroute's
      // own handler has run: the same interruption.
      if (signal && SIGNALS.includes(signal) && !timedOut && !opts.uninterruptible) interrupted ??= signal;
      timers.forEach(clearTimeout);
      if (code === 0 && !interrupted && !timedOut) {
        recordHolder(fd, opts.taken?.(readLockInfo(path)));
        resolve(fd);
        return;
      }
      // Whatever the child did, this fd (and with it any lock it got) goes.
      closeSync(fd);
      if (interrupted) reject(new Interrupted(interrupted, `waiting for ${opts.what}`));
      else if (timedOut) reject(new HostError(`timed out waiting for ${opts.what}${describeHolder(path)}`));
      else if (spawnError) reject(new HostError(`cannot run flock to take ${opts.what}: ${(spawnError as NodeJS.ErrnoException).code ?? spawnError.message}`, 'install util-linux'));
      else if (!opts.wait && code === 1) resolve(undefined);
      else reject(new HostError(`flock failed to take ${opts.what} (exit ${code}): ${stderr.trim()}`));
    });
  });
}

function readLockInfo(path: string): HolderInfo | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    // Empty: never taken (or a record being rewritten, whose gen is then above 0 anyway).
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

export interface HostLock {
  (): Promise<void>;
  // The generation the lock had when this take got it (see hostLockGeneration).
  genBefore: number | undefined;
}

export async function acquireHostLock(opts: LockOptions = {}): Promise<HostLock> {
  ensureRunDir();
  let genBefore: number | undefined;
  const taken = (prev: HolderInfo | undefined) => {
    genBefore = prev && Number.isSafeInteger(prev.gen) ? prev.gen : undefined;
    return { gen: (genBefore ?? 0) + 1, held: true };
  };
  const fd = (await lockFile(paths.lock(), { ...opts, wait: true, what: 'the nsroute host lock', taken }))!;
  trace({ ev: 'lock', op: 'acquire' });
  const gen = (genBefore ?? 0) + 1;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    recordHolder(fd, { gen: gen + 1, held: false });
    closeSync(fd);
    trace({ ev: 'lock', op: 'release' });
  };
  return Object.assign(release, { genBefore });
}

// While the lock is held, the run dir's states are read once (store.ts snapshot).
export async function withHostLock<T>(fn: (lock: { genBefore: number | undefined }) => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const release = await acquireHostLock(opts);
  const endSnapshot = beginStateSnapshot();
  try {
    return await fn({ genBefore: release.genBefore });
  } finally {
    endSnapshot();
    await release();
  }
}
