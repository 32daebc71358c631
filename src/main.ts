import { main } from './cli.js';
import { installTrace } from './sys/trace.js';

installTrace();

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
