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
  // A closed terminal must not turn a late status line into a crash mid-teardown: each stream
  // ignores its errors, from when it is first used (made at start-up, they loaded Node's
  // stream modules for `list`, which prints without them: sys/stdout.ts).
  ignoreErrorsOnFirstUse('stdout');
  ignoreErrorsOnFirstUse('stderr');

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
// A stream never made has nothing waiting.
function flushed(): Promise<unknown> {
  const one = (s: NodeJS.WriteStream | undefined) => (!s || s.writableLength === 0 ? undefined : new Promise((r) => s.write('', () => r(undefined))));
  return Promise.all([one(made.stdout), one(made.stderr)]);
}

const made: { stdout?: NodeJS.WriteStream; stderr?: NodeJS.WriteStream } = {};

// process.stdout and process.stderr are getters that make the stream on first use: wrapped so
// that the stream gets its error handler then. Where Node defines them otherwise, at once.
function ignoreErrorsOnFirstUse(name: 'stdout' | 'stderr'): void {
  const desc = Object.getOwnPropertyDescriptor(process, name);
  const getter = desc?.get;
  const adopt = (s: NodeJS.WriteStream) => {
    s.on('error', () => undefined);
    made[name] = s;
    return s;
  };
  if (!getter || !desc.configurable) {
    adopt(process[name]);
    return;
  }
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: desc.enumerable,
    get() {
      const s = adopt(getter.call(process) as NodeJS.WriteStream);
      Object.defineProperty(process, name, { configurable: true, enumerable: desc.enumerable, writable: false, value: s });
      return s;
    },
  });
}
