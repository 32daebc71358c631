import { readFileSync } from 'node:fs';

// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat). A pid
// alone is not an identity: pids are reused, pid + start time is not.
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const value = Number(rest[19]);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function isSameProcessAlive(pid: number, startTime: number): boolean {
  return processStartTime(pid) === startTime;
}

// Changes at every boot. State from another boot describes namespaces that no longer exist
// (/run is not always a tmpfs, so the run dir itself can survive a reboot).
export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}
