import { closeSync, existsSync, fstatSync, ftruncateSync, lstatSync } from 'node:fs';
import { watchNamespaces } from '../apply/watch.js';
import { hostWatched } from '../apply/lifecycle.js';
import { runningNameWatcher, runningWatcher } from '../apply/views.js';
import { validateName } from '../net/names.js';
import { ensureRunDir } from '../state/dirs.js';
import { lockFile } from '../state/lock.js';
import { paths } from '../state/paths.js';
import { readState } from '../state/store.js';
import { requireRoot } from './options.js';

// Takes NAME's watcher lock without waiting: false when another `watch NAME` holds it. A
// NAME that is not up has no directory and no lock: watching it ends as soon as the watcher
// sees it gone.
async function claim(name: string, fds: number[]): Promise<boolean> {
  if (!existsSync(paths.nsDir(name))) return true;
  const fd = await lockFile(paths.watchLock(name), { wait: false, what: `the watcher lock of ${name}` });
  if (fd === undefined) return false;
  fds.push(fd); // held until this process ends
  return true;
}

type Log = (line: Record<string, unknown>, text: string) => void;

// watch: the host's watcher (what `up` starts in the background): keeps every persistent
// namespace right (not those brought up with --no-watch) until none is left or a signal
// comes. One per run dir: it holds RUN/watch.lock (lifecycle.ts `startWatcher`).
async function runHostWatch(log: Log, json: boolean): Promise<number> {
  ensureRunDir();
  const fd = await lockFile(paths.hostWatchLock(), { wait: false, what: 'the watcher lock' });
  if (fd === undefined) {
    const other = runningWatcher();
    process.stderr.write(`nsroute: the namespaces are watched already${other ? ` by pid ${other.pid}` : ''}\n`);
    return 0;
  }
  // The lock file is this watcher's while the run dir holds this very file: removed by hand
  // with the run dir, it is not (a new one may be started), and this one ends.
  const ino = fstatSync(fd).ino;
  const alive = () => {
    try {
      return lstatSync(paths.hostWatchLock()).ino === ino;
    } catch {
      return false;
    }
  };
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    // Emptied before it is unlocked: its record must not name this process once an `up`
    // can take the lock (lifecycle.ts `runningWatcher` would trust it while it exits).
    if (alive()) {
      try {
        ftruncateSync(fd, 0);
      } catch {
        /* the record is checked against the process anyway */
      }
    }
    closeSync(fd);
  };
  let done: (why: string) => void = () => undefined;
  const finished = new Promise<string>((resolve) => (done = resolve));
  if (json) log({ watcher: 'started', pid: process.pid }, '');
  else process.stderr.write('nsroute: watching every persistent namespace (not those up with --no-watch); ^C to stop\n');
  const watcher = watchNamespaces({
    onRepair: (name, problems, read) => log({ name, repaired: true, problems, ...(process.env.NSROUTE_TEST_WATCH_READS ? { read } : {}) }, `repaired ${name}${problems.length ? `: ${problems.join('; ')}` : ''}`),
    onGone: () => {
      release();
      done(alive() ? 'nothing left to watch' : 'its lock file is gone');
    },
    alive,
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => done(sig));
  const why = await finished;
  watcher.stop();
  release();
  if (json) log({ watcher: 'ended', pid: process.pid, why }, '');
  return 0;
}

// watch NAME...: keep the given namespaces right in the foreground until they are all gone
// or a signal comes. A NAME the host watcher covers already is left to it.
export async function runWatch(names: string[], opts: { json?: boolean }): Promise<number> {
  requireRoot();
  names.forEach(validateName);
  const json = opts.json === true;
  const log: Log = (line, text) => {
    if (json) process.stdout.write(JSON.stringify({ at: new Date().toISOString(), ...line }) + '\n');
    else if (text) process.stdout.write(text + '\n');
  };
  if (names.length === 0) return runHostWatch(log, json);
  const fds: number[] = [];
  const mine: string[] = [];
  const host = runningWatcher();
  for (const n of names) {
    const st = host ? readState(n) : undefined;
    if (host && st && hostWatched(st)) {
      process.stderr.write(`nsroute: ${n} is watched already by pid ${host.pid}\n`);
      continue;
    }
    if (await claim(n, fds)) mine.push(n);
    else process.stderr.write(`nsroute: ${n} is watched already${runningNameWatcher(n) ? ` by pid ${runningNameWatcher(n)!.pid}` : ''}\n`);
  }
  if (mine.length === 0) return 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const watcher = watchNamespaces({
    names: mine,
    onRepair: (name, problems, read) => log({ name, repaired: true, problems, ...(process.env.NSROUTE_TEST_WATCH_READS ? { read } : {}) }, `repaired ${name}${problems.length ? `: ${problems.join('; ')}` : ''}`),
    onGone: () => done(),
  });
  if (!json) process.stderr.write(`nsroute: watching ${mine.join(', ')}; ^C to stop\n`);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => done());
  await finished;
  watcher.stop();
  fds.forEach((fd) => closeSync(fd));
  return 0;
}
