import { appendFileSync } from 'node:fs';

// Measurement only, unset in real use: NSROUTE_TRACE=FILE appends one JSON line per nsroute
// process to FILE when it exits, with counters of what it did (state files read) and how long
// it held the host lock each time. The benchmark (scripts/bench.ts) and the scale tests
// (test/integration/scale.test.ts) read it; nothing in nsroute acts on it.
const file = process.env.NSROUTE_TRACE;

interface Trace {
  pid: number;
  argv: string[];
  counts: Record<string, number>;
  lockHeldMs: number[];
}

let trace: Trace | undefined;

function current(): Trace {
  if (!trace) {
    trace = { pid: process.pid, argv: process.argv.slice(2), counts: {}, lockHeldMs: [] };
    process.on('exit', () => {
      try {
        appendFileSync(file!, JSON.stringify(trace) + '\n', { mode: 0o600 });
      } catch {
        /* measurement only */
      }
    });
  }
  return trace;
}

export function traceCount(what: string, n = 1): void {
  if (!file) return;
  const t = current();
  t.counts[what] = (t.counts[what] ?? 0) + n;
}

export function traceLockHeld(ms: number): void {
  if (!file) return;
  current().lockHeldMs.push(ms);
}
