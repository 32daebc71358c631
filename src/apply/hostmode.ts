import type { HostFacts, NamespaceConfig, Step } from '../plan/types.js';
import type { Profile } from '../profile/profile.js';
import type { Plan, UplinkWait } from '../plan/plan.js';
import type { Account } from '../sys/users.js';
import { cgroup2Mount, cgroupParent, cgroupProcs, systemdIsPid1 } from '../sys/cgroup.js';
import { Journal } from './journal.js';
import { HIDE_RESOLVER_DAEMONS } from '../sys/wrapper.js';
import { paths } from '../state/paths.js';

// The seam between the lifecycle (lifecycle.ts, commands/exec.ts), written around a network
// namespace, and the host modes, whose NAME has none: cgroup (programs routed by their cgroup,
// plan/cgroup.ts) and replies (a policy of the host itself, plan/replies.ts). The lifecycle
// asks these hooks, chosen by the config's mode or by what NAME's journal holds, wherever it
// would otherwise look at the namespace: who holds NAME, how a command enters it, which host
// facts and which planner it needs. Each mode's own code loads only when that mode is used.
export interface HostModeHooks {
  // Facts beyond gatherHostFacts', read before planning (under the lock).
  prepareFacts(facts: HostFacts): void;
  // The processes that are NAME's (its holders when no exec holds it), from its journal.
  members(intents: readonly Step[]): number[] | undefined;
  // The argv that runs a command as NAME's (exec, shell); absent: the mode has no programs.
  commandArgv?(config: NamespaceConfig, command: readonly string[], account?: Account): string[];
  // A planner of its own (loaded lazily) instead of buildPlan's, with its own comparison of
  // the settings asked for against those of the NAME that is up.
  planner?(): Promise<HostModePlanner>;
}

export interface HostModePlanner {
  plan(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[], opts: { waitForUplink?: UplinkWait }): Plan;
  conflicts(p: Profile, c: NamespaceConfig): string[];
}

const cgroupHooks: HostModeHooks = {
  prepareFacts(facts) {
    facts.cgroupHost = { mount: cgroup2Mount(), parent: cgroupParent(), systemd: systemdIsPid1() };
  },
  members(intents) {
    const dir = intents.find((s): s is Extract<Step, { kind: 'cgroup-dir' }> => s.kind === 'cgroup-dir');
    if (!dir) return undefined;
    const mount = cgroup2Mount();
    return mount ? cgroupProcs(mount, dir.path) : [];
  },
  commandArgv(config, command, account) {
    const mount = cgroup2Mount() ?? '/sys/fs/cgroup';
    const priv = account
      ? [`--reuid=${account.uid}`, `--regid=${account.gid}`, account.groups.length > 0 ? `--groups=${account.groups.join(',')}` : '--clear-groups']
      : [];
    return ['unshare', '-m', '--propagation', 'slave', 'sh', '-c', ENTER_CGROUP, 'nsroute-exec', config.name, `${mount}/${config.cgroup!.path}/cgroup.procs`, 'setpriv', ...priv, '--', ...command];
  },
};

const repliesHooks: HostModeHooks = {
  prepareFacts() {},
  members: () => undefined,
  async planner() {
    const { buildRepliesPlan, repliesConflicts } = await import('../plan/replies.js');
    return { plan: buildRepliesPlan, conflicts: repliesConflicts };
  },
};

const BY_MODE: Partial<Record<NamespaceConfig['mode'], HostModeHooks>> = { cgroup: cgroupHooks, replies: repliesHooks };

// The hooks of a host mode; undefined for the namespace modes.
export function hostModeHooks(mode: string | undefined): HostModeHooks | undefined {
  return mode === undefined || !Object.hasOwn(BY_MODE, mode) ? undefined : BY_MODE[mode as NamespaceConfig['mode']];
}

export type HostMode = 'cgroup' | 'replies';

export function isHostMode(mode: string | undefined): mode is HostMode {
  return hostModeHooks(mode) !== undefined;
}

// A host mode that runs no programs (replies): exec, shell and attach are refused.
export function runsNoPrograms(mode: string | undefined): mode is HostMode {
  const h = hostModeHooks(mode);
  return h !== undefined && h.commandArgv === undefined;
}

// Whether a NAME's config is a network namespace (what forwarding, firewall holes and the
// processes inside are kept for).
export function hasNetns(c: Pick<NamespaceConfig, 'mode'>): boolean {
  return !isHostMode(c.mode);
}

// exec / shell / attach into a NAME of a host mode without programs.
export function noProgramsError(name: string, mode: HostMode): { message: string; hint: string } {
  return {
    message: `${name} is a --mode ${mode} policy of the host, not a namespace: it has no programs to run`,
    hint: `programs on the host use it as they are; for a program of its own route use a namespace mode (another NAME, --mode nat)`,
  };
}

// Before planning: the facts a host mode's planner needs.
export function prepareHostModeFacts(profile: Profile, facts: HostFacts): void {
  hostModeHooks(profile.mode)?.prepareFacts(facts);
}

// The member processes of a host-mode NAME, from its journal (no state read); undefined when
// NAME's journal holds no host mode's step (a namespace mode's NAME).
export function hostModeMembers(name: string): number[] | undefined {
  const intents = new Journal(paths.journal(name)).intents();
  for (const hooks of Object.values(BY_MODE)) {
    const found = hooks!.members(intents);
    if (found !== undefined) return found;
  }
  return undefined;
}

// Runs in the command's own mount namespace (unshare -m, propagation slave: nothing goes back
// to the host), as root, before setpriv: joins NAME's cgroup (before anything else, so every
// socket the command makes is NAME's), then puts NAME's resolv.conf, gai.conf and
// nsswitch.conf over /etc as `ip netns exec` does (without entering a network namespace or
// remounting /sys), and hides the host's resolver daemons' sockets (nss-resolve, nscd), which
// no firewall rule sees (sys/wrapper.ts HIDE_HOST_RESOLVERS, same reasons).
export const ENTER_CGROUP = [
  'n=$1; p=$2; shift 2',
  'echo $$ > "$p" 2>/dev/null || { echo "nsroute: could not enter the cgroup of $n; the command was not run" >&2; exit 125; }',
  'for f in resolv.conf gai.conf nsswitch.conf; do',
  '  [ -f "/etc/netns/$n/$f" ] && [ -e "/etc/$f" ] || continue',
  '  mount --bind "/etc/netns/$n/$f" "/etc/$f" || exit 125',
  'done',
  ...HIDE_RESOLVER_DAEMONS,
  'exec "$@"',
].join('\n');
