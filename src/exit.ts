import { constants } from 'node:os';
import { HostError, Interrupted, UserError } from './errors.js';
import { permissionError } from './sys/caps.js';

// Exit codes, decided here and only here.
export const EXIT = {
  ok: 0,
  failure: 1, // the system failed (a tool, the kernel)
  usage: 2, // bad input; nothing changed
  execFailed: 125, // exec/shell: nsroute itself failed (env/chroot/docker convention)
} as const;

export function formatError(e: unknown): string {
  e = permissionError(e) ?? e;
  if (e instanceof UserError || e instanceof HostError) return `nsroute: ${e.message}${e.hint ? `; ${e.hint}` : ''}`;
  if (e instanceof Error) return `nsroute: ${e.message}`;
  return `nsroute: ${String(e)}`;
}

// A command that failed: its one line, and the exit code (cli.ts, and fastpath.ts for the
// commands it answers: the same for both).
export function reportError(e: unknown, isExec: boolean): number {
  process.stderr.write(formatError(e) + '\n');
  // Like a process the signal ended (exec, too: it already answers 128+N for a signal that
  // arrives before the command starts); 125 would claim nsroute itself failed.
  if (e instanceof Interrupted) return 128 + (constants.signals[e.signal] ?? 0);
  if (isExec) return EXIT.execFailed;
  return e instanceof UserError ? EXIT.usage : EXIT.failure;
}
