import { watch, type FSWatcher } from 'node:fs';
import { execa } from 'execa';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { netnsEtcDir } from '../state/paths.js';

// A bind mount sits on a dentry: when the host replaces /etc/resolv.conf by writing a new
// file and renaming it over the old one (NetworkManager, dhclient, resolvconf do), the kernel
// detaches the mounts on the old dentry in every other mount namespace, and a command
// already running in the namespace would see the host's new file. While the command runs,
// nsroute watches /etc and binds the namespace's file again, in the command's own mount
// namespace, right after such a replacement.
export function keepBindMounts(name: string, pid: number): { stop(): void } {
  const dir = netnsEtcDir(name);
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch('/etc', { persistent: false }, (event, file) => {
      if (event !== 'rename' || !file || !existsSync(join(dir, file))) return;
      void execa('nsenter', ['-t', String(pid), '-m', '--', 'mount', '--bind', join(dir, file), join('/etc', file)], { reject: false, stdin: 'ignore' });
    });
    watcher.on('error', () => undefined);
  } catch {
    /* no inotify: the files are still right for every new command */
  }
  return { stop: () => watcher?.close() };
}
