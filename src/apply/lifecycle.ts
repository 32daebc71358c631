import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { buildPlan } from '../plan/plan.js';
import type { NamespaceConfig } from '../plan/types.js';
import type { Profile } from '../profile/profile.js';
import { gatherHostFacts } from '../sys/hostfacts.js';
import { netnsPids } from '../sys/ip.js';
import { bootId, isSameProcessAlive } from '../sys/proc.js';
import { isDeadNetnsFile, removeIfExists } from '../sys/fsx.js';
import { withHostLock } from '../state/lock.js';
import { NETNS_RUN_DIR, paths } from '../state/paths.js';
import { allStates, readState, removeNamespaceDir, staleBootStates, writeState, type Holder, type NamespaceState } from '../state/store.js';
import { applySteps, undoJournal } from './apply.js';
import { Journal } from './journal.js';
import { undoStep, type StepContext } from './executors.js';

function contextFor(config: NamespaceConfig): StepContext {
  return { self: config, others: () => allStates().filter((s) => s.name !== config.name).map((s) => s.config) };
}

export function liveHolders(st: NamespaceState): Holder[] {
  return st.holders.filter((h) => isSameProcessAlive(h.pid, h.startTime));
}

// Reverses everything in the namespace's journal and forgets it. Caller holds the host lock.
async function teardown(st: NamespaceState): Promise<void> {
  st.status = 'tearing-down';
  writeState(st);
  const leftovers = await netnsPids(st.name);
  await undoJournal(new Journal(paths.journal(st.name)), contextFor(st.config));
  removeNamespaceDir(st.name);
  if (leftovers.length > 0) {
    process.stderr.write(`nsroute: ${st.name} is gone; processes still running in it have lost their network: ${leftovers.join(' ')}\n`);
  }
}

// A state from before a reboot: the namespace, links, routes, rules, nft table and sysctls
// it describes died with the old kernel, and undoing them now could hit objects created
// since (a new netns of the same name, the admin's sysctls). Only files outlive a reboot:
// undo those, clear a dead /run/netns placeholder, and forget the rest.
async function forgetAfterReboot(st: NamespaceState): Promise<void> {
  const journal = new Journal(paths.journal(st.name));
  for (const step of journal.intents().reverse()) {
    if (step.kind === 'netns-files') await undoStep(step, contextFor(st.config));
  }
  const placeholder = join(NETNS_RUN_DIR, st.name);
  if (isDeadNetnsFile(placeholder)) removeIfExists(placeholder);
  removeNamespaceDir(st.name);
}

async function forgetEarlierBoots(): Promise<void> {
  for (const st of staleBootStates()) await forgetAfterReboot(st);
}

// The cheap part of gc for one NAME, run by every command that touches it (under the lock):
// forget holders whose process is gone, finish a crashed create or teardown, and take down
// an ephemeral namespace nobody holds any more.
async function sweep(name: string): Promise<NamespaceState | undefined> {
  const st = readState(name);
  if (!st) {
    if (existsSync(paths.nsDir(name)) && new Journal(paths.journal(name)).intents().length === 0) removeNamespaceDir(name);
    return undefined;
  }
  const live = liveHolders(st);
  if (live.length !== st.holders.length) {
    st.holders = live;
    writeState(st);
  }
  if (st.status !== 'up' || (!st.persistent && live.length === 0)) {
    await teardown(st);
    return undefined;
  }
  return st;
}

function conflicts(p: Profile, c: NamespaceConfig): string[] {
  const out: string[] = [];
  if (p.via !== undefined && p.via !== c.uplink?.via) out.push(`via ${c.uplink?.via ?? '(host routing)'}`);
  if (p.dev !== undefined && p.dev !== c.uplink?.dev) out.push(`dev ${c.uplink?.dev ?? '(host routing)'}`);
  if (p.dns.length > 0 && p.dns.join(',') !== c.dns.join(',')) out.push(`dns ${c.dns.join(',')}`);
  if (p.subnet !== undefined && p.subnet !== c.subnet) out.push(`subnet ${c.subnet}`);
  return out;
}

export interface UpRequest {
  profile: Profile;
  persistent: boolean;
  holder?: Holder;
}

export interface UpResult {
  state: NamespaceState;
  created: boolean;
}

// Creates NAME (or joins it when it is already up with compatible settings) and records the
// holder. Validation and planning happen before the first change; a failed apply is rolled back.
export async function bringUp(req: UpRequest): Promise<UpResult> {
  const { profile } = req;
  const name = profile.name;
  return withHostLock(async () => {
    await forgetEarlierBoots();
    const existing = await sweep(name);
    if (existing) {
      const diff = conflicts(profile, existing.config);
      if (diff.length > 0) {
        throw new UserError(`${name} is already up with other settings (${diff.join(', ')})`, `use those settings, or \`nsroute down ${name}\` first`);
      }
      if (req.persistent) existing.persistent = true;
      if (req.holder) existing.holders.push(req.holder);
      writeState(existing);
      return { state: existing, created: false };
    }
    if (existsSync(join(NETNS_RUN_DIR, name))) {
      throw new UserError(`a network namespace called ${name} exists but nsroute did not create it`, 'pick another name; nsroute never touches namespaces it does not own');
    }
    const facts = await gatherHostFacts(profile.via);
    const others = allStates().filter((s) => s.name !== name);
    const plan = buildPlan(profile, facts, others.map((s) => s.config));
    const state: NamespaceState = {
      version: 1,
      name,
      status: 'creating',
      persistent: req.persistent,
      createdAt: new Date().toISOString(),
      bootId: bootId(),
      config: plan.config,
      holders: [],
    };
    writeState(state);
    try {
      await applySteps(plan.steps, new Journal(paths.journal(name)), contextFor(plan.config));
    } catch (e) {
      if (new Journal(paths.journal(name)).intents().length === 0) removeNamespaceDir(name);
      throw e;
    }
    state.status = 'up';
    if (req.holder) state.holders.push(req.holder);
    writeState(state);
    return { state, created: true };
  });
}

// The holder is done; an ephemeral namespace goes with its last holder.
export async function release(name: string, holder: Pick<Holder, 'pid' | 'startTime'>): Promise<{ tornDown: boolean }> {
  return withHostLock(async () => {
    const st = readState(name);
    if (!st) return { tornDown: false };
    st.holders = st.holders.filter((h) => !(h.pid === holder.pid && h.startTime === holder.startTime));
    writeState(st);
    const after = await sweep(name);
    return { tornDown: after === undefined };
  });
}

export interface DownResult {
  wasUp: boolean;
  ended: number[];
}

// Ends the processes in the namespace: SIGTERM, then SIGKILL after a grace period.
async function endProcesses(name: string, graceMs = 3000): Promise<number[]> {
  const pids = await netnsPids(name);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && (await netnsPids(name)).length > 0) await new Promise((r) => setTimeout(r, 50));
  for (const pid of await netnsPids(name)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  return pids;
}

export async function takeDown(name: string, force: boolean): Promise<DownResult> {
  return withHostLock(async () => {
    await forgetEarlierBoots();
    const st = await sweep(name);
    if (!st) {
      if (existsSync(join(NETNS_RUN_DIR, name)) && !existsSync(paths.nsDir(name))) {
        throw new UserError(`the network namespace ${name} was not created by nsroute`, `nsroute leaves it alone; \`ip netns del ${name}\` removes it`);
      }
      return { wasUp: false, ended: [] };
    }
    const live = liveHolders(st);
    if (live.length > 0 && !force) {
      const who = live.map((h) => `${h.pid} (${h.command.join(' ').slice(0, 40)})`).join(', ');
      throw new UserError(`${live.length} command(s) still run inside ${name}: ${who}`, `wait for them, or \`nsroute down ${name} --force\` to end them`);
    }
    const ended = force ? await endProcesses(name) : [];
    await teardown(st);
    return { wasUp: true, ended };
  });
}
