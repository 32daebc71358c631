import { spawn } from 'node:child_process';
import { closeSync, constants, existsSync, fchmodSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { HostError, Interrupted, UserError } from '../errors.js';
import { UntrustedFile } from '../sys/fsx.js';
import { isSameProcessAlive, processStartTime } from '../sys/proc.js';
import { ensureRunDir } from './dirs.js';
import { callerContext } from '../policy/context.js';
import { paths } from './paths.js';
import { readLockInfo, type HolderInfo } from './lockinfo.js';
export { hostLockGeneration } from './lockinfo.js';
import { beginStateSnapshot } from './store.js';
import { trace } from '../sys/trace.js';
import { dropRunnerLockFd, giveRunnerLockFd, runLockJob, warmRunner } from '../sys/runner.js';

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


// Opens (creating it 0600) a lock file that must be root's alone: a lock file someone else
// can open is a lock someone else can take.
function openLockFile(path: string, create = true): number {
  let fd: number;
  try {
    fd = openSync(path, O_RDWR | O_NOFOLLOW | (create ? O_CREAT : 0), 0o600);
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
  // Written over the old record, then cut to length: a reader never sees the file empty (which
  // reads as "never taken", generation 0) while a holder rewrites it, only the new record, or
  // one with the old one's tail, which does not parse (lockinfo.ts: generation unknown).
  try {
    const text = Buffer.from(JSON.stringify(info) + '\n');
    writeSync(fd, text, 0, text.length, 0);
    ftruncateSync(fd, text.length);
  } catch {
    /* informational only (a full disk must not stop nsroute from cleaning up) */
  }
}

// One run of `flock` on a lock file's fd 3, and how to stop it.
interface FlockRun {
  kill(): void;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error; stderr: string }>;
}

// flock spawned by Node, the lock file as its fd 3.
function flockByNode(fd: number, args: string[], detached: boolean): FlockRun {
  const child = spawn('flock', args, { stdio: ['ignore', 'ignore', 'pipe', fd], detached });
  let stderr = '';
  let error: Error | undefined;
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => (stderr += d));
  child.once('error', (e) => (error = e));
  return {
    kill: () => child.kill('SIGKILL'),
    done: new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, error, stderr }))),
  };
}

// flock as a job of the tool runner, which holds the host lock file as its fd 3 (runner.ts);
// undefined when it cannot. A runner that dies meanwhile leaves the run to flockByNode on
// the same file description (a flock(2) its orphaned job may have taken belongs to that
// description too, so taking it again is harmless).
function flockByRunner(fd: number, args: string[], detached: boolean): FlockRun | undefined {
  const job = runLockJob(['flock', ...args], detached);
  if (!job) return undefined;
  let fallback: FlockRun | undefined;
  let killed = false;
  const signalName = (n: number) => (Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? null) as NodeJS.Signals | null;
  return {
    kill: () => {
      killed = true;
      job.kill();
      fallback?.kill();
    },
    done: job.result.then(
      (r) => ({
        code: r.exitCode ?? null,
        signal: r.signal !== undefined ? signalName(r.signal) : null,
        error: r.errno !== undefined ? Object.assign(new Error(`errno ${r.errno}`), { code: r.errno === osConstants.errno.ENOENT ? 'ENOENT' : `errno ${r.errno}` }) : undefined,
        stderr: r.stderr,
      }),
      () => {
        fallback = flockByNode(fd, args, detached);
        if (killed) fallback.kill();
        return fallback.done;
      },
    ),
  };
}

// exec and shell (cli.ts), before the tool runner starts: the host lock file, opened now so
// that the runner can take and drop the lock for this command (runner.ts, lockFile below).
// Only a run dir and lock file that exist already, checked as acquireHostLock checks them:
// NAME and the options are not checked yet, nothing may change. Anything else leaves the lock
// to be taken the usual way, which says what is wrong.
let runnerLock: { path: string; fd: number } | undefined;
export function openHostLockForRunner(): void {
  if (runnerLock) return;
  try {
    const path = paths.lock();
    if (!existsSync(path)) return;
    ensureRunDir();
    const fd = openLockFile(path, false);
    runnerLock = { path, fd };
    giveRunnerLockFd(fd);
  } catch {
    /* taken the usual way */
  }
}

// exec and shell always run tools and take the host lock: the runner starts while their code
// loads, holding the lock file for them (cli.ts, and fastpath.ts's exec).
export function startRunnerForExec(): void {
  openHostLockForRunner();
  warmRunner();
}

// Takes flock(2) on `path` (created 0600 if missing). wait: block until it is free (a signal
// meanwhile throws Interrupted); otherwise return undefined at once when it is taken. Returns
// the fd holding the lock: closing it releases it.
export async function lockFile(path: string, opts: LockOptions & { wait: boolean; what: string }): Promise<number | undefined> {
  if (runnerLock?.path === path) throw new Error(`lockFile: ${path} is the runner's`);
  return (await takeLock(path, opts))?.fd;
}

// lockFile, and the host lock: its fd (for the holder's record), and how to let it go.
function takeLock(
  path: string,
  opts: LockOptions & { wait: boolean; what: string; taken?: (prev: HolderInfo | undefined) => Pick<HolderInfo, 'gen' | 'held'> },
): Promise<{ fd: number; unlock: () => Promise<void> } | undefined> {
  const shared = runnerLock?.path === path ? runnerLock.fd : undefined;
  const fd = shared ?? openLockFile(path);
  const args = opts.wait ? ['-x', '3'] : ['-x', '-n', '3'];
  const detached = callerContext() !== undefined || opts.uninterruptible === true;
  const child = (shared !== undefined ? flockByRunner(fd, args, detached) : undefined) ?? flockByNode(fd, args, detached);
  // The runner's fd 3 shares the lock: LOCK_UN lets it go (closing nsroute's fd alone would
  // not), through the runner or, without one, a flock of nsroute's own.
  const unlock =
    shared !== undefined
      ? async () => {
          const detachedUn = callerContext() !== undefined;
          const r = await (flockByRunner(fd, ['-u', '3'], detachedUn) ?? flockByNode(fd, ['-u', '3'], detachedUn)).done;
          if (r.code !== 0) closeRunnerLock();
        }
      : async () => closeSync(fd);
  return new Promise((resolve, reject) => {
    let interrupted: NodeJS.Signals | undefined;
    let timedOut = false;
    const onSignal = (sig: NodeJS.Signals) => {
      interrupted ??= sig;
      child.kill();
    };
    if (!opts.uninterruptible) for (const sig of SIGNALS) process.on(sig, onSignal);
    const timers: NodeJS.Timeout[] = [];
    if (opts.timeoutMs !== undefined) {
      timers.push(
        setTimeout(() => {
          timedOut = true;
          child.kill();
        }, opts.timeoutMs),
      );
    }
    if (opts.wait) {
      timers.push(setTimeout(() => process.stderr.write(`nsroute: waiting for ${opts.what}${describeHolder(path)}\n`), opts.noticeMs ?? 1000));
    }
    void child.done.then(({ code, signal, error: spawnError, stderr }) => {
      for (const sig of SIGNALS) process.off(sig, onSignal);
      // A terminal's ^C reaches the whole process group, flock too, maybe before nsroute's
      // own handler has run: the same interruption.
      if (signal && SIGNALS.includes(signal) && !timedOut && !opts.uninterruptible) interrupted ??= signal;
      timers.forEach(clearTimeout);
      if (code === 0 && !interrupted && !timedOut) {
        recordHolder(fd, opts.taken?.(readLockInfo(path)));
        resolve({ fd, unlock });
        return;
      }
      // Whatever the child did, this fd (and with it any lock it got) goes.
      if (shared !== undefined) void unlock();
      else closeSync(fd);
      if (interrupted) reject(new Interrupted(interrupted, `waiting for ${opts.what}`));
      else if (timedOut) reject(new HostError(`timed out waiting for ${opts.what}${describeHolder(path)}`));
      else if (spawnError) reject(new HostError(`cannot run flock to take ${opts.what}: ${(spawnError as NodeJS.ErrnoException).code ?? spawnError.message}`, 'install util-linux'));
      else if (!opts.wait && code === 1) resolve(undefined);
      else reject(new HostError(`flock failed to take ${opts.what} (exit ${code}): ${stderr.trim()}`));
    });
  });
}

// The runner's hold on the lock file could not be let go: closing nsroute's fd and ending
// the runners that share it lets the kernel drop the lock; later takes open the file afresh.
function closeRunnerLock(): void {
  if (!runnerLock) return;
  closeSync(runnerLock.fd);
  runnerLock = undefined;
  dropRunnerLockFd();
}

export interface HostLock {
  (): Promise<void>;
  // The generation the lock had when this take got it (see hostLockGeneration).
  genBefore: number | undefined;
}

// While this process holds the host lock: the generation the lock had when it was taken (see
// hostLockGeneration); undefined otherwise. What a read made before the take is checked
// against (apply.ts takeEarlyUndoRead).
let heldSince: number | undefined;
export function hostLockTakenAt(): number | undefined {
  return heldSince;
}

export async function acquireHostLock(opts: LockOptions = {}): Promise<HostLock> {
  ensureRunDir();
  let genBefore: number | undefined;
  const taken = (prev: HolderInfo | undefined) => {
    genBefore = prev && Number.isSafeInteger(prev.gen) ? prev.gen : undefined;
    return { gen: (genBefore ?? 0) + 1, held: true };
  };
  const { fd, unlock } = (await takeLock(paths.lock(), { ...opts, wait: true, what: 'the nsroute host lock', taken }))!;
  trace({ ev: 'lock', op: 'acquire' });
  const gen = (genBefore ?? 0) + 1;
  heldSince = genBefore;
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    heldSince = undefined;
    recordHolder(fd, { gen: gen + 1, held: false });
    await unlock();
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
    const afterRelease = endSnapshot();
    await release();
    afterRelease();
  }
}
