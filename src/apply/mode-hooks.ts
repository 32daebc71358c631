import type { Profile } from '../profile/profile.js';
import type { Plan, UplinkWait } from '../plan/plan.js';
import type { HostFacts, NamespaceConfig } from '../plan/types.js';

// The seam between the lifecycle (lifecycle.ts: lock, journal, apply, state, sweep, watcher),
// which every mode shares, and what a *host mode* does differently: a NAME that names a policy
// on the host, with no network namespace (--mode replies, plan/replies.ts). The lifecycle asks
// `isHostMode` where a namespace is assumed (a command to enter it, the netns name taken) and
// takes the planner and the comparison of a NAME that is up from the hooks. Each mode's code
// loads only when that mode is used (a dynamic import: not on exec's path).
export type HostMode = 'replies';
const HOST_MODES: readonly string[] = ['replies'];

export function isHostMode(mode: string | undefined): mode is HostMode {
  return mode !== undefined && HOST_MODES.includes(mode);
}

// Whether a NAME's config is a network namespace (what forwarding, firewall holes and the
// processes inside are kept for).
export function hasNetns(c: Pick<NamespaceConfig, 'mode'>): boolean {
  return !isHostMode(c.mode);
}

export interface HostModeHooks {
  plan(profile: Profile, facts: HostFacts, others: readonly NamespaceConfig[], opts: { waitForUplink?: UplinkWait }): Plan;
  // What differs between the settings asked for and those of the NAME that is up.
  conflicts(p: Profile, c: NamespaceConfig): string[];
}

export async function hostModeHooks(mode: HostMode): Promise<HostModeHooks> {
  switch (mode) {
    case 'replies': {
      const { buildRepliesPlan, repliesConflicts } = await import('../plan/replies.js');
      return { plan: buildRepliesPlan, conflicts: repliesConflicts };
    }
  }
}

// exec / shell / attach into a NAME of a host mode: there is nothing to run a program in.
export function noProgramsError(name: string, mode: HostMode): { message: string; hint: string } {
  return {
    message: `${name} is a --mode ${mode} policy of the host, not a namespace: it has no programs to run`,
    hint: `programs on the host use it as they are; for a program of its own route use a namespace mode (another NAME, --mode nat)`,
  };
}
