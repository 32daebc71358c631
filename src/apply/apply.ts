import { AggregateSysError, HostError } from '../errors.js';
import { join } from 'node:path';
import type { HostFacts, Step } from '../plan/types.js';
import { WriteFailed } from '../sys/fsx.js';
import { dirname } from 'node:path';
import { libDir, runDir } from '../state/paths.js';
import { Journal } from './journal.js';
import {
  combinable,
  createHostLines,
  createLocalPart,
  doStep,
  nsfsCtime,
  undoHostLines,
  undoLocalPart,
  undoStep,
  vethOwnership,
  type StepContext,
  type UndoFacts,
  type VethOwner,
} from './executors.js';
import { nsConfigLines } from '../plan/plan.js';
import { failedBatchLines, ipBatch, ipBatchForce, ipJsonBatch, onlyGone } from '../sys/ip.js';
import { netnsInode } from '../sys/proc.js';
import { NETNS_RUN_DIR } from '../state/paths.js';
import { SysError } from '../errors.js';
import { crashPoint } from './crash.js';
import { hostLockGeneration, hostLockTakenAt } from '../state/lock.js';

// Applies steps in order through the journal, then `commit` (recording the result). On any
// failure, a step's or a write of the journal or state (a full disk), everything intended so
// far is undone (same code path as teardown) and the error is rethrown: a step's as it was,
// a failed write as one line saying what, that it was undone, and how to fix it.
export async function applySteps(steps: readonly Step[], journal: Journal, ctx: StepContext, commit: () => void = () => undefined, facts?: HostFacts): Promise<void> {
  try {
    if (facts && combinable(steps, ctx)) {
      await applyCombined(steps, journal, ctx, facts);
      commit();
      return;
    }
    for (const [i, step] of steps.entries()) {
      journal.intend(i, step);
      const made = await doStep(step, ctx);
      // Before the crash point and 'done': undo must know what it created (journal.ts).
      if (made?.netnsIno !== undefined) journal.created(i, made.netnsIno, made.netnsCtime);
      await crashPoint('apply', i);
      journal.done(i);
    }
    commit();
  } catch (err) {
    let undoErr: Error | undefined;
    try {
      await undoJournal(journal, ctx);
    } catch (e) {
      undoErr = e as Error;
    }
    throw explainFailure(err as Error, ctx.name, undoErr);
  }
}

// A nat create in four spawns (PLATFORM.md: each costs ~10 ms from Node): one `ip -4 -batch`
// for the host side (the namespace, the fail-closed rules, the veth, the uplink's table and
// rule), then one `ip -batch` inside NAME (ip.ts ipBatch), while the nft table (and firewall
// holes, if the ruleset read with the facts says they are needed) are written in parallel and
// the files and sysctls in between (the inside batch starts as soon as the host batch is
// done). Every intent is journaled (one fsync) before anything runs; undo replays intents
// done or not, so a failure or a crash anywhere is undone exactly. Crash points follow
// everything.
async function applyCombined(steps: readonly Step[], journal: Journal, ctx: StepContext, facts: HostFacts): Promise<void> {
  journal.intendAll(steps);
  const host: string[] = [];
  let netnsLine = -1;
  let netnsIndex = -1;
  for (const [i, step] of steps.entries()) {
    if (step.kind === 'netns-add') ((netnsLine = host.length + 1), (netnsIndex = i));
    host.push(...createHostLines(step, ctx, facts));
  }
  const hostBatch = ipBatch(host, undefined, 4).then(
    () => undefined,
    (e: Error) => e,
  );
  // Files, sysctls and nft: parallel with the batch; all settled before anything is decided.
  // The nft parts first: each part runs synchronously up to its first spawn, and the files
  // (written and fsynced in place) would otherwise hold back the slowest tool, nft.
  const nftFirst = [...steps].sort((a, b) => Number(isNftPart(b)) - Number(isNftPart(a)));
  const local = Promise.allSettled(nftFirst.map((step) => createLocalPart(step, ctx, facts)));
  const hostErr = await hostBatch;
  if (netnsIndex >= 0) {
    // `netns add` ran unless the batch failed at that very line: record which namespace is ours.
    const failedAt = hostErr instanceof SysError ? failedBatchLines(hostErr.stderr)[0] : undefined;
    const ran = hostErr === undefined || (failedAt !== undefined && failedAt > netnsLine);
    const path = join(NETNS_RUN_DIR, (steps[netnsIndex] as Extract<Step, { kind: 'netns-add' }>).name);
    const ino = ran ? netnsInode(path) : undefined;
    if (ino !== undefined) journal.created(netnsIndex, ino, nsfsCtime(path));
  }
  // The namespace's own side (addresses, routes inside) needs only what the host batch made
  // (the namespace, the veth): it runs while the local parts (the nft table above all) finish,
  // not after them. Its intent is journaled with the rest, so undo covers it either way.
  const insideStep = steps.find((s): s is Extract<Step, { kind: 'ns-config' }> => s.kind === 'ns-config');
  const insideRun =
    insideStep && !hostErr
      ? ipBatch(nsConfigLines(insideStep), insideStep.netns).then(
          () => undefined,
          (e: Error) => e,
        )
      : Promise.resolve(undefined);
  const localErr = (await local).find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as Error | undefined;
  const insideErr = await insideRun;
  if (hostErr) throw hostErr;
  if (localErr) throw localErr;
  if (insideErr) throw insideErr;
  for (const [i] of steps.entries()) {
    await crashPoint('apply', i);
    journal.done(i);
  }
}

// The undo of a nat namespace's journal in a few spawns: one read (the owner tag of its veth,
// the rules), then `ip -4 -force -batch` removing, in reverse order of creation, the uplink's
// rule and table (if no other namespace uses them), the veth, the fail-closed rules nobody
// needs any more, the namespace (split in two batches, the namespace first: namespaceFirst);
// in parallel with the nft table's update (and the files, sysctls, firewall holes), which
// none of them waits for. Lines for objects already gone fail and are passed over (undo is
// idempotent); any other failure is reported and keeps the journal for a retry.
async function undoCombined(journal: Journal, ctx: StepContext, intents: readonly Step[]): Promise<void> {
  const veths = vethSteps(intents);
  const readLines = undoReadLines(veths);
  const reads = takeEarlyUndoRead(journal.path, readLines) ?? ipJsonBatch(readLines, ['-4']);
  const errors: Error[] = [];
  // Files and sysctls (in reverse order, as step by step), nft's table and the firewall holes
  // (independent of each other and of the links and rules): parallel with the read and the
  // batch. Every part is idempotent.
  const local = Promise.all([...intents].reverse().map((step) => undoLocalPart(step, ctx).catch((e: Error) => void errors.push(e))));
  // A failed read: the local parts settle before it is thrown.
  const answers = await reads.catch(async (e: unknown) => {
    await local;
    throw e;
  });
  const facts: UndoFacts = { vethOurs: new Map(), guardJson: answers[answers.length - 1] };
  for (const [k, v] of veths.entries()) facts.vethOurs.set(v.hostIface, await vethOwnership(v, answers[k], ctx));
  const lines = intents.map((step) => undoHostLines(step, ctx, facts));
  let i = intents.length - 1;
  while (i >= 0 && lines[i]!.length === 0) i--;
  const split = namespaceFirst(intents, lines, i, facts.vethOurs);
  // Settled, never rejected: a batch that throws (the runner died) is reported with the rest,
  // and waits for nobody's handler while the local parts run.
  const settle = (p: Promise<string | undefined>) => p.then((failed) => ({ failed }), (thrown: unknown) => ({ thrown: thrown as Error }));
  const batch = settle(ipBatchForce(split ? split.first : lines.slice(0, i + 1).reverse().flat(), 4));
  // The second batch follows the first at once: it needs nothing of the local parts (nft).
  // The crash points of the steps the first batch undid come in between.
  const last = i;
  const second = split
    ? batch.then(async () => {
        for (let k = last; k > split.veth; k--) await crashPoint('undo', k);
        return settle(ipBatchForce(split.then, 4));
      })
    : undefined;
  // The steps at the end whose undo needed no `ip` line are undone once the local parts are:
  // a crash point each.
  await local;
  for (let j = intents.length - 1; j > i && errors.length === 0; j--) await crashPoint('undo', j);
  const results = [await batch];
  if (split && second) {
    results.push(await second);
    i = split.veth;
  }
  for (const r of results) {
    if ('thrown' in r) errors.push(r.thrown);
    else if (r.failed !== undefined && !onlyGone(r.failed)) {
      errors.push(new SysError(`ip -4 -force -batch (undo of ${ctx.name}): ${r.failed}`, ['ip', '-4', '-force', '-batch', '-'], undefined, r.failed));
    }
  }
  for (; i >= 0; i--) await crashPoint('undo', i);
  if (errors.length > 0) throw new AggregateSysError(errors);
  journal.remove();
}

// `ip link del` of a veth waits for the kernel to finish with the device (18-45 ms measured
// here, under the host lock), while deleting the namespace its peer is in makes the kernel
// remove the pair by itself, in its own worker: the host end is gone ~2-5 ms later (measured
// on 6.18). So when the undo removes both NAME's namespace and its veth, a first batch deletes
// the namespace and runs the lines of the steps made after the veth (the uplink's rule and
// table); a second batch then deletes the veth, normally gone by then ("Cannot find device",
// passed over), still there when something keeps the namespace alive (processes left inside,
// an open descriptor) or the kernel's worker is late: then it is deleted as before.
// The fail-closed rules change only in that second batch, after the veth is gone: until then a
// namespace kept alive has no route out but its own (plan/guard.ts), whether or not its nft
// elements are gone yet (one transaction removes them all). A namespace without an uplink has
// no such rule (it follows the host's routing): its veth is set down first (~3 ms more), so
// that nothing leaves it unmasqueraded once its elements are gone.
// Not split (one batch, as before) when the veth is NAME's only by its peer, not by its owner
// tag: once the namespace is gone, a retry after a crash between the two batches could not
// prove it NAME's any more; nor when a fail-closed rule step comes after the veth (the plans
// make it before). `lines`: each intent's undo lines; `last`: the last intent with any;
// `owners`: why each veth is NAME's (executors.ts vethOwnership). Undefined: one batch.
export function namespaceFirst(intents: readonly Step[], lines: readonly string[][], last: number, owners: ReadonlyMap<string, VethOwner>): { first: string[]; then: string[]; veth: number } | undefined {
  const ns = intents.findIndex((s) => s.kind === 'netns-add');
  if (ns < 0 || lines[ns]!.length === 0) return undefined;
  const name = (intents[ns] as Extract<Step, { kind: 'netns-add' }>).name;
  let veth = -1;
  for (const [k, s] of intents.entries()) if (s.kind === 'veth-add' && s.netns === name && lines[k]!.length > 0) veth = k;
  if (veth < ns) return undefined;
  const step = intents[veth] as Extract<Step, { kind: 'veth-add' }>;
  if (owners.get(step.hostIface) !== 'tag' || intents.slice(veth + 1).some((s) => s.kind === 'route-guard')) return undefined;
  // The first: (without an uplink) the veth down, the namespace, then the later steps' lines in
  // reverse order of creation; the second: the rest in reverse order, the namespace's left out.
  const down = step.uplinkTable === undefined ? [`link set dev ${step.hostIface} down`] : [];
  const first = [...down, ...lines[ns]!, ...lines.slice(veth + 1, last + 1).reverse().flat()];
  const then = lines.slice(0, veth + 1).flatMap((l, k) => (k === ns ? [] : [l])).reverse().flat();
  return { first, then, veth };
}

const vethSteps = (intents: readonly Step[]) => intents.filter((s): s is Extract<Step, { kind: 'veth-add' }> => s.kind === 'veth-add');

// What undoCombined reads before it removes anything: each veth's owner tag, and the rules.
function undoReadLines(veths: readonly Extract<Step, { kind: 'veth-add' }>[]): string[] {
  return [...veths.map((v) => `link show dev ${v.hostIface}`), 'rule show'];
}

// That read, started before the host lock by a command that is about to take it to tear NAME
// down (an exec whose command ended: it runs while the exec waits for the command's children
// and for the lock, not under the lock). Used by the undo only when no other take of the lock
// happened since it began: then nothing nsroute does changed what it read (other tools can
// change the host between a read and the removal under the lock just as well), and the lines
// are the very ones the undo would read. Anything else: the undo reads again, as without it.
interface EarlyUndoRead {
  journal: string;
  gen: number;
  lines: string[];
  answers: Promise<(unknown[] | undefined)[]>;
}
let earlyUndo: EarlyUndoRead | undefined;

export function readUndoFactsEarly(journalPath: string): void {
  earlyUndo = undefined;
  const gen = hostLockGeneration();
  if (gen === undefined) return;
  let intents: Step[];
  try {
    intents = new Journal(journalPath).intents();
  } catch {
    return; // the undo under the lock reads it, and says what is wrong
  }
  const veths = vethSteps(intents);
  if (veths.length === 0) return;
  const lines = undoReadLines(veths);
  const answers = ipJsonBatch(lines, ['-4']);
  answers.catch(() => undefined); // a failure is the undo's to report (it reads again)
  earlyUndo = { journal: journalPath, gen, lines, answers };
}

function takeEarlyUndoRead(journalPath: string, lines: readonly string[]): Promise<(unknown[] | undefined)[]> | undefined {
  const e = earlyUndo;
  earlyUndo = undefined;
  if (!e || e.journal !== journalPath || e.gen !== hostLockTakenAt() || e.lines.length !== lines.length || e.lines.some((l, i) => l !== lines[i])) return undefined;
  return e.answers.catch(() => ipJsonBatch(lines, ['-4']));
}

// The directory to free space in: nsroute's run or lib dir holding the file, else its own.
export function stateRootOf(path: string): string {
  for (const root of [runDir(), libDir()]) if (path === root || path.startsWith(`${root}/`)) return root;
  return dirname(path);
}

function explainFailure(err: Error, name: string, undoErr: Error | undefined): Error {
  const retry = `\`nsroute down ${name}\` retries it`;
  if (err instanceof WriteFailed) {
    const undone = undoErr ? `undoing what was set up for ${name} also failed (${undoErr.message.split('\n')[0]})` : `everything set up for ${name} was undone`;
    return new HostError(`could not record ${name}: ${err.message}; ${undone}`, `free space (or fix the file system) under ${stateRootOf(err.path)} and run the command again${undoErr ? `; ${retry}` : ''}`);
  }
  if (undoErr) err.message += `\n(rollback also failed: ${undoErr.message}; ${retry})`;
  return err;
}

// Undoes every intended step in reverse. Keeps going past failures and reports them all;
// the journal is removed only when everything was undone, so a later run can retry.
export async function undoJournal(journal: Journal, ctx: StepContext): Promise<void> {
  const errors: Error[] = [];
  const intents = journal.intents();
  const withOwner = { ...ctx, netns: journal.netnsOwnership() };
  if (combinable(intents, withOwner)) return undoCombined(journal, withOwner, intents);
  for (let i = intents.length - 1; i >= 0; i--) {
    try {
      await undoStep(intents[i]!, withOwner);
    } catch (e) {
      errors.push(e as Error);
    }
    await crashPoint('undo', i);
  }
  if (errors.length > 0) throw new AggregateSysError(errors);
  journal.remove();
}

function isNftPart(step: Step): boolean {
  return step.kind === 'nft-member' || step.kind === 'nft-sync' || step.kind === 'fw-holes';
}
