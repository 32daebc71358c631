import { join } from 'node:path';

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
  watchLock: (name: string) => join(runDir(), 'ns', name, 'watch.lock'),
  host: () => join(libDir(), 'host.json'),
  nsRoot: () => join(runDir(), 'ns'),
  nsDir: (name: string) => join(runDir(), 'ns', name),
  state: (name: string) => join(runDir(), 'ns', name, 'state.json'),
  journal: (name: string) => join(runDir(), 'ns', name, 'journal.jsonl'),
  watchLog: (name: string) => join(runDir(), 'ns', name, 'watch.log'),
  dhcpScript: (name: string) => join(runDir(), 'ns', name, 'dhcp.sh'),
  dhcpPid: (name: string) => join(runDir(), 'ns', name, 'udhcpc.pid'),
  // Per NAME: the user's files under /etc/netns/NAME that nsroute replaced, plus markers.
  files: (name: string) => join(libDir(), 'files', name),
  filesRoot: () => join(libDir(), 'files'),
  profile: (name: string) => join(configDir(), `${name}.toml`),
};
