import { main } from './cli.js';

// The first chunk the loader (src/loader.ts) loads; it calls start(). warmUp is for the
// loader's writeCodeCaches.
export { warmUp } from './cli.js';

export function start(): void {
  // A closed terminal must not turn a late status line into a crash mid-teardown.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);

  // NSROUTE_TRACE (sys/trace.ts) wraps node:child_process before anything spawns; loaded only
  // when set, so other runs do not load child_process at start-up.
  const traced = process.env.NSROUTE_TRACE ? import('./sys/trace.js').then((t) => t.installTrace()) : Promise.resolve();
  traced.then(() => main(process.argv)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`nsroute: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 125;
    },
  );
}
