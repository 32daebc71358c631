import { readFileSync } from 'node:fs';
import { readRegularFile } from './fsx.js';

// The DHCP client's pid, from the pid file udhcpc wrote in the run dir (root's alone; the
// file's own mode follows the umask nsroute ran with): a regular file, not a symlink, and
// only a pid that is still a udhcpc (pids are reused: a stale file must not make teardown
// signal some other process).
export function dhcpPid(pidFile: string): number | undefined {
  try {
    const pid = Number((readRegularFile(pidFile) ?? '').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'udhcpc' ? pid : undefined;
  } catch {
    return undefined;
  }
}
