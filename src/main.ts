import { fastPath } from './fastpath.js';

// The first chunk the loader (src/loader.ts) loads; it calls start(). warmUp is for the
// loader's writeCodeCaches. The command line itself (cli.ts, commander) is loaded only for
// what fastpath.ts does not answer.
export async function warmUp(): Promise<void> {
  await (await import('./cli.js')).warmUp();
}

async function main(argv: string[]): Promise<number> {
  const fast = fastPath(argv);
  return fast ? fast() : (await import('./cli.js')).main(argv);
}

export function start(): void {
  // A closed terminal must not turn a late status line into a crash mid-teardown.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);

  // The command's work is done when main() settles: exit then, explicitly. Left to drain, Node
  // closes its signal handles on the way out, and for that moment a signal has its default
  // effect again: an exec whose command already ended, sent SIGTERM late by a `down --force`
  // that found its record, died of it instead of exiting with its status (races.test r4). On
  // this path the handlers stay (measured: an exec sent SIGTERM nonstop at its end died of it
  // 200 times in 200 left to drain, 0 in 200 with process.exit).
  // What is written but not yet taken by a pipe's reader (more than the pipe holds, 64 KiB:
  // `list --json` at 1000 NAMEs piped to jq) is waited for first: process.exit would drop it.
  // Meanwhile the handlers stay.
  // NSROUTE_TRACE (sys/trace.ts) wraps node:child_process before anything spawns; loaded only
  // when set, so other runs do not load child_process at start-up.
  const traced = process.env.NSROUTE_TRACE ? import('./sys/trace-install.js').then((t) => t.installTrace()) : Promise.resolve();
  traced.then(() => main(process.argv)).then(
    (code) => flushed().then(() => process.exit(code)),
    (e: unknown) => {
      process.stderr.write(`nsroute: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
      return flushed().then(() => process.exit(125));
    },
  );
}

// Resolves once everything written to stdout and stderr so far has reached the fd (at once
// when nothing waits, the usual case); a write that fails (a closed pipe) counts as done.
function flushed(): Promise<unknown> {
  const one = (s: NodeJS.WriteStream) => (s.writableLength === 0 ? undefined : new Promise((r) => s.write('', () => r(undefined))));
  return Promise.all([one(process.stdout), one(process.stderr)]);
}
