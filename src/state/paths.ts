import { isAbsolute, join } from 'node:path';
import { UserError } from '../errors.js';

// Runtime state lives under /run/nsroute (gone at reboot, like the namespaces themselves);
// profiles under /etc/nsroute. Both overridable, for tests and unusual systems.
export function runDir(): string {
  return process.env.NSROUTE_RUN_DIR || '/run/nsroute';
}
// What nsroute must be able to put back even if the run dir is lost (removed by hand, or a
// tmpfs /run at reboot): the user's own files it replaced, and the host sysctls it changed.
export function libDir(): string {
  return process.env.NSROUTE_LIB_DIR || '/var/lib/nsroute';
}
export function configDir(): string {
  return process.env.NSROUTE_CONFIG_DIR || '/etc/nsroute';
}
export function hostResolvConfPath(): string {
  return process.env.NSROUTE_RESOLV_CONF || '/etc/resolv.conf';
}
export function hostNsswitchPath(): string {
  return process.env.NSROUTE_NSSWITCH_CONF || '/etc/nsswitch.conf';
}
export function resolvedConfPath(): string {
  return process.env.NSROUTE_RESOLVED_CONF || '/run/systemd/resolve/resolv.conf';
}
// Fixed by iproute2: `ip netns exec` bind-mounts the files of this directory over /etc.
export function netnsEtcDir(name: string): string {
  return join('/etc/netns', name);
}
export const NETNS_RUN_DIR = '/run/netns';

export const paths = {
  lock: () => join(runDir(), 'lock'),
  // The host's one watcher (`nsroute watch`): flock held for its life, its pid in the file.
  hostWatchLock: () => join(runDir(), 'watch.lock'),
  watchLog: () => join(runDir(), 'watch.log'),
  // `nsroute watch NAME` in the foreground (and, before the host watcher, one per NAME).
  watchLock: (name: string) => join(runDir(), 'ns', name, 'watch.lock'),
  host: () => join(libDir(), 'host.json'),
  nsRoot: () => join(runDir(), 'ns'),
  nsDir: (name: string) => join(runDir(), 'ns', name),
  state: (name: string) => join(runDir(), 'ns', name, 'state.json'),
  journal: (name: string) => join(runDir(), 'ns', name, 'journal.jsonl'),
  legacyWatchLog: (name: string) => join(runDir(), 'ns', name, 'watch.log'),
  dhcpScript: (name: string) => join(runDir(), 'ns', name, 'dhcp.sh'),
  dhcpPid: (name: string) => join(runDir(), 'ns', name, 'udhcpc.pid'),
  // Per NAME: the user's files under /etc/netns/NAME that nsroute replaced, plus markers.
  files: (name: string) => join(libDir(), 'files', name),
  filesRoot: () => join(libDir(), 'files'),
  profile: (name: string) => join(configDir(), `${name}.toml`),
};

// The NSROUTE_* settings that name paths. Each must be absolute when set: a relative one would
// put root's state, or read its profiles, relative to wherever the command happens to run, and
// differ between the command and the watcher and units it starts.
export const PATH_ENV = [
  'NSROUTE_RUN_DIR',
  'NSROUTE_LIB_DIR',
  'NSROUTE_CONFIG_DIR',
  'NSROUTE_RESOLV_CONF',
  'NSROUTE_RESOLVED_CONF',
  'NSROUTE_NSSWITCH_CONF',
  'NSROUTE_UNIT_DIR',
] as const;

export function checkPathEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const key of PATH_ENV) {
    const value = env[key];
    if (value && (!isAbsolute(value) || value.includes('\0'))) {
      throw new UserError(`${key}=${JSON.stringify(value)} is not an absolute path`, `set it to an absolute path, or unset it for the default`);
    }
  }
}
