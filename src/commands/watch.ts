import { watchNamespaces } from '../apply/watch.js';
import { validateName } from '../net/names.js';
import { allStates } from '../state/store.js';
import { requireRoot } from './options.js';

// watch [NAME...]: keep namespaces right in the foreground until SIGINT/SIGTERM: routes put
// back after the uplink returns, a flushed firewall restored (see apply/watch.ts). For
// persistent namespaces, where no `nsroute exec` is running to do it.
export async function runWatch(names: string[], opts: { json?: boolean }): Promise<number> {
  requireRoot();
  names.forEach(validateName);
  const pick = () => (names.length > 0 ? names : allStates().map((s) => s.name));
  const log = (name: string, problems: string[]) => {
    const line = opts.json ? JSON.stringify({ at: new Date().toISOString(), name, repaired: true, problems }) : `repaired ${name}${problems.length ? `: ${problems.join('; ')}` : ''}`;
    process.stdout.write(line + '\n');
  };
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  // Watching given names ends once they are all gone; watching every namespace never does.
  const watcher = watchNamespaces({ names: pick, onRepair: log, ...(names.length > 0 ? { onGone: () => done() } : {}) });
  if (!opts.json) process.stderr.write(`nsroute: watching ${names.length > 0 ? names.join(', ') : 'every namespace'}; ^C to stop\n`);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => done());
  await finished;
  watcher.stop();
  return 0;
}
