import { closeSync, constants, openSync, writeSync } from 'node:fs';

// NSROUTE_TRACE=FILE (off by default; for tests and the benchmark): appends one JSON line per
// process nsroute spawns ({"ev":"spawn","argv":[...]}) and per take and release of the host
// lock ({"ev":"lock","op":"acquire"|"release"}), each with the pid and a monotonic time in ms.
// Spawns are wrapped on node:child_process itself (trace-install.ts, loaded only with
// NSROUTE_TRACE), so no spawn escapes it (execa's included). Harmless:
// the file is opened with O_NOFOLLOW and 0600, and any failure to write it is ignored.
const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW } = constants;

export function trace(ev: Record<string, unknown>): void {
  const file = process.env.NSROUTE_TRACE;
  if (!file) return;
  try {
    const fd = openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, JSON.stringify({ pid: process.pid, t: Number(process.hrtime.bigint() / 1000n) / 1000, ...ev }) + '\n');
    } finally {
      closeSync(fd);
    }
  } catch {
    /* tracing must never change what nsroute does */
  }
}
