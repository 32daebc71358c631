import { closeSync, existsSync } from 'node:fs';
import { watchNamespaces } from '../apply/watch.js';
import { runningWatcher } from '../apply/lifecycle.js';
import { validateName } from '../net/names.js';
import { lockFile } from '../state/lock.js';
import { paths } from '../state/paths.js';
import { allStates } from '../state/store.js';
import { requireRoot } from './options.js';

// Takes NAME's watcher lock without waiting (lifecycle.ts `startWatcher`): false when another
// watcher holds it. A NAME that is not up has no directory and no lock: watching it ends as
// soon as the watcher sees it gone.
async function claim(name: string, fds: number[]): Promise<boolean> {
  if (!existsSync(paths.nsDir(name))) return true;
  const fd = await lockFile(paths.watchLock(name), { wait: false, what: `the watcher lock of ${name}` });
  if (fd === undefined) return false;
  fds.push(fd); // held until this process ends
  return true;
}

// watch [NAME...]: keep namespaces right in the foreground until SIGINT/SIGTERM: routes put
// back after the uplink returns, a flushed firewall restored (see apply/watch.ts). For
// persistent namespaces, where no `nsroute exec` is running to do it.
export async function runWatch(names: string[], opts: { json?: boolean }): Promise<number> {
  requireRoot();
  names.forEach(validateName);
  const fds: number[] = [];
  const mine: string[] = [];
  for (const n of names) {
    if (await claim(n, fds)) mine.push(n);
    else process.stderr.write(`nsroute: ${n} is watched already${runningWatcher(n) ? ` by pid ${runningWatcher(n)!.pid}` : ''}\n`);
  }
  if (names.length > 0 && mine.length === 0) return 0;
  const pick = () => (mine.length > 0 ? mine : allStates().map((s) => s.name));
  const log = (name: string, problems: string[]) => {
    const line = opts.json ? JSON.stringify({ at: new Date().toISOString(), name, repaired: true, problems }) : `repaired ${name}${problems.length ? `: ${problems.join('; ')}` : ''}`;
    process.stdout.write(line + '\n');
  };
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  // Watching given names ends once they are all gone; watching every namespace never does.
  const watcher = watchNamespaces({ names: pick, onRepair: log, ...(mine.length > 0 ? { onGone: () => done() } : {}) });
  if (!opts.json) process.stderr.write(`nsroute: watching ${mine.length > 0 ? mine.join(', ') : 'every namespace'}; ^C to stop\n`);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => done());
  await finished;
  watcher.stop();
  fds.forEach((fd) => closeSync(fd));
  return 0;
}
