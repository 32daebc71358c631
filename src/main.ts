import { main } from './cli.js';
import { installTrace } from './sys/trace.js';

installTrace();

// The first chunk the loader (src/loader.ts) loads; it calls start(). warmUp is for the
// loader's writeCodeCaches.
export { warmUp } from './cli.js';

export function start(): void {
  // A closed terminal must not turn a late status line into a crash mid-teardown.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);

  main(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`nsroute: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 125;
    },
  );
}
