import { HostError, UserError } from './errors.js';
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
