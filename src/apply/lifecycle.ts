import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { compareNames } from '../net/names.js';
import { HostError, UserError } from '../errors.js';
import { buildPlan, stepsFor, tagOf, type UplinkWaiting } from '../plan/plan.js';
import type { HostFacts, NamespaceConfig } from '../plan/types.js';
import { recoverConfig } from '../plan/recover.js';
import type { Profile } from '../profile/profile.js';
import { parseTag } from '../net/tag.js';
import { parseAddrs, parseLinks } from '../net/iproute-json.js';
import { parseNameservers } from '../net/resolv.js';
import { gatherHostFacts, readHostFactsEarly, type EarlyFacts } from '../sys/hostfacts.js';
import { ipIgnoringGone, ipJson, netnsId, setLinkAlias } from '../sys/ip.js';
import { bootId, isSameProcessAlive, netnsInode, netnsProcessScan, type NetnsScan } from '../sys/proc.js';
import { isDeadNetnsFile, readRegularFile, removeIfExists, WriteFailed } from '../sys/fsx.js';
import { withHostLock } from '../state/lock.js';
import { netnsEtcDir, paths } from '../state/paths.js';
import { ensureRunDir, ensureRunSubdir } from '../state/dirs.js';
import { allStates, knownNames, readHostState, readState, removeNamespaceDir, sameHolder, staleBootStates, writeState, type Holder, type NamespaceState } from '../state/store.js';
import { applySteps, readUndoFactsEarly, stateRootOf, undoJournal } from './apply.js';
import { Journal } from './journal.js';
import { checkNetnsFiles, nsfsCtime, repairSteps, undoStep, type StepContext } from './executors.js';
import { readListeners, recoverInbound } from './inbound.js';
import { crashNow, crashPoint } from './crash.js';
import { trace } from '../sys/trace.js';
import { nftRulesetJson, nftTableExists } from '../sys/nft.js';
import { hostModeHooks, isHostMode, prepareHostModeFacts, runsNoPrograms, noProgramsError } from './hostmode.js';
import { closeJoins, joinHolders, joinHoldersByName, openJoins } from '../state/joins.js';
import { isLastExec, isLiveNetns, liveHolders, namespaceProcesses, netnsPath, ownNetnsInode, processHolders, runningNameWatcher, runningWatcher, userProcesses, viewOf, type NamespaceView } from './views.js';
import { conflicts } from '../plan/conflicts.js';

// What a sweep did, for gc's report (other commands ignore it).
export interface SweepReport {
  forgotten: string[]; // states from an earlier boot
  recovered: string[]; // rebuilt from the kernel after the run dir was lost
  rolledBack: string[]; // an interrupted create, undone
  finished: string[]; // an interrupted teardown, completed
  tornDown: string[]; // ephemeral and no longer used
  droppedHolders: { name: string; pid: number; command: string[] }[];
  foundProcesses: { name: string; pids: number[] }[];
  removed: { object: string; name: string }[]; // leftovers with no state behind them
  kept: { name: string; reason: string }[];
  // Teardowns that failed (their state and journal stay, so the next gc retries them).
  failed: { name: string; error: string }[];
  watchers: string[]; // persistent namespaces that had no watcher running, and have one again
}

export function emptyReport(): SweepReport {
  return { forgotten: [], recovered: [], rolledBack: [], finished: [], tornDown: [], droppedHolders: [], foundProcesses: [], removed: [], kept: [], failed: [], watchers: [] };
}

export function contextFor(name: string, config?: NamespaceConfig): StepContext {
  return { name, self: config, others: () => allStates().filter((s) => s.name !== name).map((s) => s.config) };
}

// A persistent NAME that is up can be joined without the lock (state/joins.ts); caller holds it.
export function allowJoins(st: NamespaceState): void {
  if (st.status !== 'up' || !st.persistent) return;
  const owner = new Journal(paths.journal(st.name)).netnsOwnership();
  if (typeof owner === 'object') openJoins(st.name, owner);
}

// /run/netns/NAME is no longer the namespace nsroute created (deleted, or another tool's now).
function netnsReplaced(name: string): boolean {
  const owner = new Journal(paths.journal(name)).netnsOwnership();
  const ino = ownNetnsInode(name);
  if (ino === undefined) return false;
  if (netnsInode(netnsPath(name)) !== ino) return true;
  // Same inode number: a namespace made after ours was freed can get it again; the ctime differs.
  return typeof owner === 'object' && owner.ctime !== undefined && nsfsCtime(netnsPath(name)) !== owner.ctime;
}

// Whether the host's watcher keeps NAME right: persistent and not `up --no-watch` (an
// ephemeral namespace has its `nsroute exec`, which watches while its command runs).
export function hostWatched(st: NamespaceState): boolean {
  return st.status === 'up' && st.persistent && !st.noWatch;
}

// A persistent namespace has nobody running `nsroute exec` in it to put its routes back when
// the uplink returns, so `up` starts the host's one watcher, `nsroute watch`, in the
// background unless it runs already (repairs logged to the run dir's watch.log); it covers
// every persistent NAME and ends by itself once none is left. Caller holds the host lock.
// There is at most one per run dir whatever crashes: it takes the watcher lock (flock on
// RUN/watch.lock, released by the kernel when it dies) and exits at once when another holds
// it; the lock file names the holder (pid + start time), and a watcher that gives up empties
// it first, under the host lock, so an `up` after that starts the next one.
// Returns whether one was started (false: it runs already).
export function startWatcher(): boolean {
  if (runningWatcher()) return false;
  const script = process.argv[1];
  if (!script) return false;
  ensureRunDir();
  const log = openSync(paths.watchLog(), 'a', 0o600);
  try {
    const child = spawn(process.execPath, [...WATCHER_NODE_FLAGS, script, 'watch', '--json'], { detached: true, stdio: ['ignore', log, log], env: process.env });
    child.unref();
    crashNow('watcher:0');
  } finally {
    closeSync(log);
  }
  return true;
}

// The watcher is a long-lived Node process that handles a line of netlink now and then: V8's
// lite mode (no optimizing compiler) and a small young generation keep its memory down
// (measured: 53 -> 49 MiB for the node process alone).
const WATCHER_NODE_FLAGS = ['--max-semi-space-size=1', '--lite-mode'];

// NAME is up and recorded: a watcher that cannot be started is worth a line, not a failure
// (gc starts it again).
function startWatcherOrWarn(st: NamespaceState): void {
  try {
    startWatcher();
  } catch (e) {
    process.stderr.write(`nsroute: ${st.name} is up, but the watcher could not be started: ${(e as Error).message}; \`nsroute gc\` starts it again\n`);
  }
}

// Per-NAME watchers of an older nsroute (recorded in the state; holding ns/NAME/watch.lock
// with their output going to ns/NAME/watch.log, which tells them from a `watch NAME` someone
// runs in a terminal): the host watcher replaces them. Returns whether the state records one
// (its `watcher` field, which the caller removes from its copy of the state and writes).
export function stopLegacyWatcher(st: Readonly<NamespaceState>): boolean {
  const pids = new Set<number>();
  if (st.watcher && isSameProcessAlive(st.watcher.pid, st.watcher.startTime)) pids.add(st.watcher.pid);
  const locked = runningNameWatcher(st.name);
  if (locked && outputOf(locked.pid) === paths.legacyWatchLog(st.name)) pids.add(locked.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone meanwhile */
    }
  }
  return st.watcher !== undefined;
}

function outputOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/fd/1`);
  } catch {
    return undefined;
  }
}

// NAME's own watchers: a `watch NAME` in the foreground, or a per-NAME one of an older
// nsroute. (The host watcher ends by itself once no persistent namespace is left.)
function stopWatcher(st: NamespaceState): void {
  const pids = new Set<number>();
  if (st.watcher && isSameProcessAlive(st.watcher.pid, st.watcher.startTime)) pids.add(st.watcher.pid);
  const locked = runningNameWatcher(st.name);
  if (locked) pids.add(locked.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone meanwhile */
    }
  }
}

// Reverses everything in the namespace's journal and forgets it. Caller holds the host lock.
// `inside`: the processes in NAME's namespace, when the caller has just looked (only for the
// line about what lost its network).
async function teardown(st: NamespaceState, inside?: readonly number[]): Promise<void> {
  closeJoins(st.name); // before anything looks for processes inside (state/joins.ts)
  stopWatcher(st);
  st.status = 'tearing-down';
  try {
    writeState(st);
  } catch (e) {
    // A full or read-only run dir must not make a namespace impossible to remove: the mark
    // only tells a later sweep that a teardown was under way, and the journal (removed last)
    // lets it finish one either way.
    if (!(e instanceof WriteFailed)) throw e;
  }
  const leftovers = inside ?? userProcesses(st.name);
  await undoJournal(new Journal(paths.journal(st.name)), contextFor(st.name, st.config));
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
    if (step.kind === 'netns-files') await undoStep(step, contextFor(st.name, st.config));
  }
  if (isDeadNetnsFile(netnsPath(st.name))) removeIfExists(netnsPath(st.name));
  removeNamespaceDir(st.name);
}

export async function forgetEarlierBoots(report = emptyReport()): Promise<void> {
  for (const st of staleBootStates()) {
    await forgetAfterReboot(st);
    report.forgotten.push(st.name);
  }
}

// The owner-tagged host veths (net/tag.ts) and their addresses. `skip`: NAMEs whose veths
// are not wanted (list: those with a state), so that N namespaces up cost no N config
// recoveries (each reads the NAME's resolv.conf).
export async function taggedVeths(skip?: ReadonlySet<string>) {
  const [links, addrs] = await Promise.all([ipJson(['link', 'show', 'type', 'veth']), ipJson(['address', 'show', 'type', 'veth'])]);
  const parsedAddrs = parseAddrs(addrs);
  return parseLinks(links).flatMap((l) => {
    const tag = parseTag(l.alias);
    return tag && !skip?.has(tag.name) ? [{ link: l.name, peerNetnsId: l.peerNetnsId, tag, config: recoverConfig(tag, l.name, parsedAddrs, readRegularFile(join(netnsEtcDir(tag.name), 'resolv.conf'))) }] : [];
  });
}

// The state file of a live namespace is gone (run dir removed by hand): rebuild state and
// journal from the kernel's owner tags, so the namespace is managed (and undone) as before.
// A tagged veth whose namespace is gone, or that cannot be read back, is removed when no
// process uses its namespace. Caller holds the host lock.
export async function recoverLost(report: SweepReport, only?: string): Promise<void> {
  let ruleset: unknown;
  for (const v of await taggedVeths()) {
    const name = v.tag.name;
    if ((only !== undefined && name !== only) || readState(name)) continue;
    // NAME's namespace is this veth's only if the veth's peer is in it: another tool may have
    // deleted NAME and made its own (the veth then leads into nsroute's, now nameless, one).
    const live = isLiveNetns(name) && v.peerNetnsId !== undefined && (await netnsId(name)) === v.peerNetnsId;
    if (live && v.config) {
      const persistent = v.tag.persistent;
      // Published ports and caps are read back from the kernel (apply/inbound.ts).
      await recoverInbound(v.config, (ruleset ??= await nftRulesetJson()));
      ensureRunSubdir('ns', name);
      const journal = new Journal(paths.journal(name));
      journal.remove(); // a journal left without its state: the rebuilt one covers the same steps
      const ino = netnsInode(netnsPath(name));
      stepsFor(v.config, { persistent }).forEach((step, i) => {
        journal.intend(i, step);
        if (step.kind === 'netns-add' && ino !== undefined) journal.created(i, ino, nsfsCtime(netnsPath(name)));
        journal.done(i);
      });
      writeState({ version: 1, name, status: 'up', persistent, createdAt: new Date().toISOString(), bootId: bootId(), config: v.config, holders: [] });
      report.recovered.push(name);
      continue;
    }
    if (live) {
      // A bridge/macvlan namespace (no address on the host end), or one cut short mid-create:
      // never removed by guesswork while the namespace exists.
      report.kept.push({ name, reason: `its state is lost and its link ${v.link} cannot be read back; \`ip netns del ${name}\` and \`ip link del ${v.link}\` remove it` });
      continue;
    }
    // Tagged as NAME's, and NAME's namespace is gone (or is another tool's now): only the link goes.
    await ipIgnoringGone(['link', 'del', 'dev', v.link]);
    report.removed.push({ object: 'link', name: v.link });
  }
}

// The cheap part of gc for one NAME, run by every command that touches it (under the lock):
// undo a journal left without state, finish a crashed create or teardown, forget holders
// whose process is gone (pid + start time), count processes still inside as holders, and take
// down an ephemeral namespace nothing uses any more.
// `leaving`: a holder that is done (release): dropped like a dead one, and the state written
// only if NAME stays.
export async function sweep(name: string, report = emptyReport(), leaving?: Pick<Holder, 'pid' | 'startTime'>): Promise<NamespaceState | undefined> {
  const st = readState(name);
  if (!st) {
    const journal = new Journal(paths.journal(name));
    if (journal.intents().length > 0) {
      if (namespaceProcesses(name).length > 0) {
        report.kept.push({ name, reason: `its state file is missing and processes run inside; \`ip netns pids ${name}\` lists them` });
        return undefined;
      }
      await undoJournal(journal, contextFor(name));
      report.rolledBack.push(name);
    }
    if (existsSync(paths.nsDir(name))) removeNamespaceDir(name);
    return undefined;
  }
  if (st.status !== 'up') {
    (st.status === 'creating' ? report.rolledBack : report.finished).push(name);
    await teardown(st);
    return undefined;
  }
  const kept = leaving ? st.holders.filter((h) => !sameHolder(h, leaving)) : st.holders;
  let live = kept.filter((h) => isSameProcessAlive(h.pid, h.startTime));
  // A host mode's process can leave NAME while it runs (`move --out`): then it holds it no longer.
  if (hostModeHooks(st.config.mode)) {
    const members = new Set(namespaceProcesses(name));
    live = live.filter((h) => h.kind !== 'process' || members.has(h.pid));
  }
  let changed = live.length !== st.holders.length;
  for (const h of kept) if (!live.includes(h)) report.droppedHolders.push({ name, pid: h.pid, command: h.command });
  st.holders = live;
  // Execs that joined without the lock hold NAME too; the processes they run are theirs.
  const joined = joinHolders(name).length > 0;
  let inside: number[] | undefined;
  if (live.length === 0 && !joined) {
    const found = await processHolders(name);
    if (found.length === 0) inside = [];
    if (found.length > 0) {
      st.holders = found;
      changed = true;
      report.foundProcesses.push({ name, pids: found.map((h) => h.pid) });
    }
  }
  // Another tool deleted NAME (and maybe made its own): nothing is left to keep up, and
  // teardown removes only what is provably nsroute's, once nothing runs in ours any more.
  const replaced = netnsReplaced(name);
  if ((!st.persistent || replaced) && st.holders.length === 0 && !joined) {
    // (teardown marks the state first: the holders dropped above need no write of their own)
    await teardown(st, inside);
    report.tornDown.push(name);
    return undefined;
  }
  if (changed) writeState(st);
  return st;
}

// nsroute must run in the host's network namespace: its lock lives there, and the links it
// makes must be created there. Run from inside one of its namespaces (`nsroute shell`, then
// `sudo nsroute ...`), it would do both wrong.
export function refuseInsideNamespace(): void {
  let self: Stats;
  try {
    self = statSync('/proc/self/ns/net');
  } catch {
    return;
  }
  // By the namespace identity each state recorded (state.netns; the states are read without
  // the lock anyway, and come from the index): a stat of NAME's namespace only where that
  // identity is the caller's, to be sure it is still mounted there, or where none was
  // recorded (a state of an older nsroute, a NAME with just a journal). At 1000 NAMEs one stat
  // each was ~16 ms of every command.
  let recorded = new Map<string, number>();
  try {
    recorded = new Map(allStates().flatMap((s) => (s.netns ? [[s.name, s.netns.ino] as const] : [])));
  } catch {
    /* an untrusted state is reported by what reads it next: each NAME is looked at by name */
  }
  const inside = knownNames().find((n) => {
    const ino = recorded.get(n);
    if (ino !== undefined && ino !== self.ino) return false;
    try {
      const st = statSync(netnsPath(n));
      return st.dev === self.dev && st.ino === self.ino;
    } catch {
      return false;
    }
  });
  if (inside) {
    throw new UserError(`nsroute is running inside its namespace ${inside}`, 'run it from the host (leave the `nsroute shell` first)');
  }
}

// Puts back what another tool removed from a namespace that is up: the nft table (a flushed
// or reloaded firewall), the holes in a FORWARD policy of DROP, the uplink's routes and rule
// (the kernel deletes routes when a link goes down; they come back with the link), the
// forwarding sysctls. Everything here is idempotent. An uplink that is still down cannot take
// its route back: the namespace's traffic stays blocked (kill switch), which is no error.
// Caller holds the host lock.
// `others`: the configs of every other namespace, when the caller has them (the host watcher's
// index); read from the run dir otherwise.
export async function repair(st: NamespaceState, others?: readonly NamespaceConfig[]): Promise<string[]> {
  const ctx = others ? { name: st.name, self: st.config, others: () => [...others] } : contextFor(st.name, st.config);
  return repairSteps(new Journal(paths.journal(st.name)).intents(), ctx);
}

// What every command does for the NAME it touches before acting on it.
async function touch(name: string): Promise<NamespaceState | undefined> {
  await forgetEarlierBoots();
  if (!readState(name) && isLiveNetns(name)) await recoverLost(emptyReport(), name);
  return sweep(name);
}

export interface UpRequest {
  profile: Profile;
  persistent: boolean;
  holder?: Holder;
  // Start `nsroute watch NAME` for a persistent namespace (up; not with --no-watch).
  watch?: boolean;
  // Also wait for an uplink interface that does not exist yet (the unit's up, at boot).
  waitForMissingUplink?: boolean;
  // The host facts read already (exec: sys/hostfacts.ts), null for none; by default bringUp
  // starts that read itself.
  early?: EarlyFacts | null;
}

export interface UpResult {
  state: NamespaceState;
  created: boolean;
  waiting?: UplinkWaiting; // created with its kill switch closed: the uplink is not usable yet
}

// A join (exec into a NAME that is up) repairs what another tool removed, unless NAME is a
// persistent one the host watcher keeps right: then the watcher repairs, and the join saves
// the ruleset and rule reads. Still under the lock: a join without it could enter a NAME
// after `down --force` ended what ran there (races.test.ts).
function watchedNow(st: NamespaceState): boolean {
  // The host watcher (watch.ts) covers every persistent NAME that is not --no-watch.
  if (!st.persistent || st.noWatch) return false;
  return runningWatcher() !== undefined;
}

// Creates NAME (or joins it when it is already up with compatible settings) and records the
// holder. Validation and planning happen before the first change; a failed apply is rolled back.
export async function bringUp(req: UpRequest): Promise<UpResult> {
  const { profile } = req;
  const name = profile.name;
  refuseInsideNamespace();
  // A host mode without programs (hostmode.ts, replies): NAME names a policy, nothing runs in it.
  if (req.holder && runsNoPrograms(profile.mode)) refuseJoin(name, profile.mode);
  const ownPlanner = await hostModeHooks(profile.mode)?.planner?.();
  // A NAME that looks new: its host facts are read before the lock (readHostFactsEarly).
  // Nothing of NAME's at all (no state, journal or namespace): the sweep under the lock then
  // changes nothing either.
  const early = req.early !== undefined ? req.early : readHostFactsEarly(name, profile.via, profile.ipv6 === 'nat');
  // Its answer is awaited before the lock is taken, not under it: at 1000 NAMEs ip alone takes
  // ~100 ms to print the host (2 MB of JSON), and parsing it as long again.
  const earlyFacts = early ? await early.facts : undefined;
  // And planned before it too, from those facts and the states read now: the plan is a
  // function of them alone, and is used under the lock only when no other take of the lock
  // happened since the facts were read (then neither has changed). A namespace mode only (a
  // host mode's planner prepares its facts first), not with --publish (its listeners are read
  // under the lock). A planning error is left to the plan under the lock, which says it again.
  const waitForUplink = req.persistent ? (req.waitForMissingUplink ? 'missing-too' : 'existing') : false;
  const planFor = (facts: HostFacts, others: readonly NamespaceState[]) => buildPlan(profile, facts, others.map((s) => s.config), { persistent: req.persistent, waitForUplink });
  let earlyPlan: ReturnType<typeof buildPlan> | undefined;
  if (earlyFacts && !ownPlanner && !(profile.publish && profile.publish.length > 0)) {
    try {
      earlyPlan = planFor(earlyFacts, allStates().filter((s) => s.name !== name));
    } catch {
      earlyPlan = undefined;
    }
    if (earlyPlan) {
      trace({ ev: 'plan', early: true });
      await crashPoint('plan', 0);
    }
  }
  return withHostLock(async ({ genBefore }) => {
    const existing = await touch(name);
    if (existing && netnsReplaced(name)) {
      throw new UserError(
        `the network namespace ${name} is no longer the one nsroute created (another tool deleted or replaced it) and processes still run in nsroute's`,
        `\`nsroute down ${name} --force\` ends them and removes what is nsroute's`,
      );
    }
    if (existing) {
      const existingMode = existing.config.mode;
      if (req.holder && runsNoPrograms(existingMode)) refuseJoin(name, existingMode);
      const existingPlanner = await hostModeHooks(existingMode)?.planner?.();
      const diff = existingPlanner ? existingPlanner.conflicts(profile, existing.config) : conflicts(profile, existing.config);
      if (diff.length > 0) {
        throw new UserError(`${name} is already up with other settings (${diff.join(', ')})`, `use those settings, or \`nsroute down ${name}\` first`);
      }
      if (req.persistent && !existing.persistent) {
        existing.persistent = true;
        // The owner tag carries the lifetime, so a lost run dir does not turn `up` into ephemeral.
        if (!hostModeHooks(existing.config.mode)) await setLinkAlias(existing.config.hostIface, tagOf(existing.config, true));
      }
      if (req.holder) existing.holders.push(req.holder);
      // Caps changed by `up`: applied in place, journaled (apply/inbound-change.ts).
      if (profile.rateDown !== undefined || profile.rateUp !== undefined) {
        const { changeRates } = await import('./inbound-change.js');
        await changeRates(existing, profile);
      }
      if (stopLegacyWatcher(existing)) delete existing.watcher;
      if (req.persistent && req.watch === false) existing.noWatch = true;
      if (req.watch) delete existing.noWatch;
      writeState(existing);
      // A persistent NAME with a live watcher is kept right by it: no repair per exec.
      // A NAME the host watcher keeps right: one look at nsroute's nft table (a firewall reload
      // the watcher has not caught up with yet) instead of the whole repair's reads; the routes
      // and rules it leaves to the watcher (until then the kill switch holds).
      const needsRepair = !watchedNow(existing) || !(await nftTableExists());
      if (needsRepair) for (const p of await repair(existing)) process.stderr.write(`nsroute: could not restore ${p}\n`);
      if (req.watch && existing.persistent) startWatcherOrWarn(existing);
      allowJoins(existing);
      return { state: existing, created: false };
    }
    if (!isHostMode(profile.mode) && existsSync(netnsPath(name))) {
      throw new UserError(`a network namespace called ${name} exists but nsroute did not create it`, 'pick another name; nsroute never touches namespaces it does not own');
    }
    const unchanged = early !== undefined && early !== null && genBefore === early.gen;
    const facts = (unchanged ? earlyFacts : undefined) ?? (await gatherHostFacts(profile.via, { ipv6: profile.ipv6 === 'nat' }));
    let plan = unchanged ? earlyPlan : undefined;
    if (!plan) {
      if (profile.publish && profile.publish.length > 0) facts.listeners = await readListeners();
      const others = allStates().filter((s) => s.name !== name);
      prepareHostModeFacts(profile, facts);
      plan = ownPlanner ? ownPlanner.plan(profile, facts, others.map((s) => s.config), { waitForUplink }) : planFor(facts, others);
      trace({ ev: 'plan', early: false });
    }
    // Refused before the first change: what the files step cannot write safely, and a
    // host.json that is not root's alone (its saved values are what teardown writes back).
    for (const step of plan.steps) if (step.kind === 'netns-files') checkNetnsFiles(step.netns, Object.keys(step.files));
    readHostState();
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
    try {
      writeState(state);
    } catch (e) {
      removeNamespaceDir(name);
      if (e instanceof WriteFailed) throw new HostError(`could not record ${name}: ${e.message}; nothing was changed`, `free space (or fix the file system) under ${stateRootOf(e.path)} and run the command again`);
      throw e;
    }
    try {
      const journal = new Journal(paths.journal(name));
      await applySteps(plan.steps, journal, contextFor(name, plan.config), () => {
        state.status = 'up';
        const own = journal.netnsOwnership();
        if (typeof own === 'object') state.netns = own;
        if (req.holder) state.holders.push(req.holder);
        if (req.persistent && req.watch === false) state.noWatch = true;
        writeState(state);
        // An uplink that is not usable yet (plan.waiting): step by step, where the uplink's
        // route step falls back to the unreachable route alone (uplink-wait.ts).
      }, plan.waiting ? undefined : facts);
    } catch (e) {
      if (new Journal(paths.journal(name)).intents().length === 0) removeNamespaceDir(name);
      throw e;
    }
    if (req.watch && state.persistent) startWatcherOrWarn(state);
    allowJoins(state);
    return { state, created: true, ...(plan.waiting ? { waiting: plan.waiting } : {}) };
  });
}

function refuseJoin(name: string, mode: Parameters<typeof noProgramsError>[1]): never {
  const e = noProgramsError(name, mode);
  throw new UserError(e.message, e.hint);
}

// Before release(): when this holder is the last exec of an ephemeral NAME, the teardown's
// read of the host starts now, outside the lock (apply.ts readUndoFactsEarly).
// st: NAME's state as read now (without the lock).
export function prepareRelease(st: NamespaceState | undefined, holder: Pick<Holder, 'pid' | 'startTime'>): void {
  try {
    if (!isLastExec(st, holder) || st.status !== 'up') return;
    readUndoFactsEarly(paths.journal(st.name));
  } catch {
    /* release reads it all again under the lock */
  }
}

export interface ReleaseResult {
  tornDown: boolean;
  // Processes still running inside that keep an ephemeral namespace up after its last exec.
  keptFor: number[];
}

// The holder is done; an ephemeral namespace goes with its last holder, unless processes the
// command left behind still run inside (never tear a namespace down under a running program).
// Runs to the end once begun: a signal meanwhile (the exec passed it on to its command already)
// does not leave NAME half-released.
export async function release(name: string, holder: Pick<Holder, 'pid' | 'startTime'>): Promise<ReleaseResult> {
  return withHostLock(async () => {
    if (!readState(name)) return { tornDown: false, keptFor: [] };
    const after = await sweep(name, emptyReport(), holder);
    if (!after) return { tornDown: true, keptFor: [] };
    const onlyProcesses = !after.persistent && after.holders.every((h) => h.kind === 'process');
    return { tornDown: false, keptFor: onlyProcesses ? after.holders.map((h) => h.pid) : [] };
  }, { uninterruptible: true });
}

export interface DownResult {
  wasUp: boolean;
  ended: number[];
}

// Ends everything using the namespace: SIGTERM to the nsroute execs holding it (they pass it
// on to their commands and do not start one they have not started yet) and to every process
// inside, then SIGKILL to what is still inside after a grace period.
async function endProcesses(name: string, holders: readonly Holder[], graceMs = 3000): Promise<number[]> {
  // Only processes in NAME's own namespace: never those of a namespace that took its name.
  const inside = namespaceProcesses(name);
  const execs = holders.filter((h) => h.kind !== 'process').map((h) => h.pid);
  const all = [...new Set([...execs, ...inside])];
  for (const pid of all) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && namespaceProcesses(name).length > 0) await new Promise((r) => setTimeout(r, 50));
  for (const pid of namespaceProcesses(name)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  return all;
}

export async function takeDown(name: string, force: boolean): Promise<DownResult> {
  refuseInsideNamespace();
  return withHostLock(async () => {
    // No exec joins NAME without the lock from here on (state/joins.ts): every one that did is
    // found below, by its record or its processes. Allowed again when NAME stays.
    closeJoins(name);
    try {
      return await takeDownLocked(name, force);
    } catch (e) {
      const st = readState(name);
      if (st) allowJoins(st);
      throw e;
    }
  });
}

async function takeDownLocked(name: string, force: boolean): Promise<DownResult> {
  {
    const had = readState(name) !== undefined;
    const st = await touch(name);
    if (!st) {
      // The sweep took it down already (e.g. another tool deleted or replaced the namespace):
      // what was nsroute's is gone, and a namespace of that name now is not nsroute's.
      if (had && !existsSync(paths.nsDir(name))) return { wasUp: true, ended: [] };
      if (existsSync(netnsPath(name)) && !existsSync(paths.nsDir(name))) {
        throw new UserError(`the network namespace ${name} was not created by nsroute`, `nsroute leaves it alone; \`ip netns del ${name}\` removes it`);
      }
      return { wasUp: false, ended: [] };
    }
    const live = liveHolders(st);
    if (live.length > 0 && !force) {
      const who = live.map((h) => `${h.pid} (${h.command.join(' ').slice(0, 40)})`).join(', ');
      throw new UserError(`${live.length} process(es) still use ${name}: ${who}`, `wait for them, or \`nsroute down ${name} --force\` to end them`);
    }
    const ended = force ? await endProcesses(name, live) : [];
    await teardown(st);
    return { wasUp: true, ended };
  }
}

// The name servers in the namespace's resolv.conf (with --dhcp: the lease's).
export function namespaceNameservers(name: string): string[] {
  return parseNameservers(readRegularFile(join(netnsEtcDir(name), 'resolv.conf')) ?? '');
}

export async function leaseOf(st: NamespaceState): Promise<{ address?: string; dns: string[] }> {
  const addrs = parseAddrs(await ipJson(['-n', st.name, '-4', 'address', 'show', 'dev', st.config.nsIface]).catch(() => []));
  const a = addrs.find((x) => x.family === 4);
  const dns = namespaceNameservers(st.name);
  return { ...(a ? { address: `${a.local}/${a.prefix}` } : {}), dns };
}

export async function untrackedViews(states: readonly NamespaceState[], scan: NetnsScan): Promise<NamespaceView[]> {
  const views: NamespaceView[] = [];
  for (const v of await taggedVeths(new Set(states.map((s) => s.name)))) {
    if (readState(v.tag.name) || !v.config || !isLiveNetns(v.tag.name)) continue;
    const st: NamespaceState = { version: 1, name: v.tag.name, status: 'up', persistent: v.tag.persistent, createdAt: '', bootId: bootId(), config: v.config, holders: [] };
    views.push(await viewOf(st, scan, true));
  }
  return views;
}

export async function inspectLocked(): Promise<NamespaceView[]> {
  return withHostLock(async () => {
    const scan = netnsProcessScan();
    const states = allStates();
    const joins = joinHoldersByName();
    const views = await Promise.all(states.map((st) => viewOf(st, scan, false, joins)));
    const known = new Set(states.map((s) => s.name));
    for (const v of await taggedVeths(known)) {
      if (readState(v.tag.name) || !v.config || !isLiveNetns(v.tag.name)) continue;
      const st: NamespaceState = { version: 1, name: v.tag.name, status: 'up', persistent: v.tag.persistent, createdAt: '', bootId: bootId(), config: v.config, holders: [] };
      views.push(await viewOf(st, scan, true));
    }
    return views.sort((a, b) => compareNames(a.state.name, b.state.name));
  });
}
