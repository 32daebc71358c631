import { AggregateSysError } from '../errors.js';
import type { Step } from '../plan/types.js';
import { Journal } from './journal.js';
import { doStep, undoStep, type StepContext } from './executors.js';
import { crashPoint } from './crash.js';

// Applies steps in order through the journal. On failure, everything intended so far is
// undone (same code path as teardown) and the original error is rethrown.
export async function applySteps(steps: readonly Step[], journal: Journal, ctx: StepContext): Promise<void> {
  for (const [i, step] of steps.entries()) {
    journal.intend(i, step);
    try {
      const made = await doStep(step, ctx);
      // Before the crash point and 'done': undo must know what it created (journal.ts).
      if (made?.netnsIno !== undefined) journal.created(i, made.netnsIno);
    } catch (err) {
      try {
        await undoJournal(journal, ctx);
      } catch (undoErr) {
        (err as Error).message += `\n(rollback also failed: ${(undoErr as Error).message}; \`nsroute down ${ctx.name}\` retries it)`;
      }
      throw err;
    }
    await crashPoint('apply', i);
    journal.done(i);
  }
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
