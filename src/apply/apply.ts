import { AggregateSysError, HostError } from '../errors.js';
import type { Step } from '../plan/types.js';
import { WriteFailed } from '../sys/fsx.js';
import { dirname } from 'node:path';
import { libDir, runDir } from '../state/paths.js';
import { Journal } from './journal.js';
import { doStep, undoStep, type StepContext } from './executors.js';
import { crashPoint } from './crash.js';

// Applies steps in order through the journal, then `commit` (recording the result). On any
// failure, a step's or a write of the journal or state (a full disk), everything intended so
// far is undone (same code path as teardown) and the error is rethrown: a step's as it was,
// a failed write as one line saying what, that it was undone, and how to fix it.
export async function applySteps(steps: readonly Step[], journal: Journal, ctx: StepContext, commit: () => void = () => undefined): Promise<void> {
  try {
    for (const [i, step] of steps.entries()) {
      journal.intend(i, step);
      const made = await doStep(step, ctx);
      // Before the crash point and 'done': undo must know what it created (journal.ts).
      if (made?.netnsIno !== undefined) journal.created(i, made.netnsIno);
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
