import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import { trace } from './trace.js';

// NSROUTE_TRACE's spawn lines (trace.ts): node:child_process wrapped before anything spawns.
// Apart from trace.ts, which every command loads (the state store traces its reads): loading
// node:child_process loads Node's stream and net modules too, which `list` does not need.
let installed = false;

export function installTrace(): void {
  if (installed || !process.env.NSROUTE_TRACE) return;
  installed = true;
  const cp = childProcess as unknown as Record<string, (...a: unknown[]) => unknown>; // the mutable CommonJS object
  for (const fn of ['spawn', 'spawnSync', 'execFile', 'execFileSync'] as const) {
    const orig = cp[fn]!;
    cp[fn] = function (this: unknown, file: unknown, args?: unknown, ...rest: unknown[]) {
      trace({ ev: 'spawn', argv: [String(file), ...(Array.isArray(args) ? args.map(String) : [])] });
      return orig.call(this, file, args, ...rest);
    };
  }
  // ES modules importing { spawn } see the wrapped functions from now on.
  syncBuiltinESMExports();
}
