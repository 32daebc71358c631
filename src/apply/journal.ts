import { dirname } from 'node:path';
import type { Step } from '../plan/types.js';
import { appendLineSync, ensureTrustedSubdir, readTrustedFile, removeIfExists } from '../sys/fsx.js';

// Write-ahead journal of one namespace: the intent of each step is on disk (fsync) before the
// step runs, and marked done after. Undo replays every intent backwards, done or not, so a
// crash at any instant (even inside a non-atomic `ip -batch`) can be undone.
export type JournalEntry = { op: 'do'; i: number; step: Step } | { op: 'done'; i: number };

export class Journal {
  constructor(readonly path: string) {}

  intend(i: number, step: Step): void {
    ensureTrustedSubdir(dirname(this.path), 0o700);
    appendLineSync(this.path, JSON.stringify({ op: 'do', i, step } satisfies JournalEntry));
  }

  done(i: number): void {
    appendLineSync(this.path, JSON.stringify({ op: 'done', i } satisfies JournalEntry));
  }

  // A journal someone other than root could have written is never acted on: its undo
  // would delete whatever it names (fsx.ts `readTrustedFile` throws UntrustedFile).
  entries(): JournalEntry[] {
    const text = readTrustedFile(this.path);
    if (text === undefined) return [];
    // A crash can leave a torn last line: everything before it is intact.
    return text.split('\n').flatMap((line) => {
      try {
        return line.trim() ? [JSON.parse(line) as JournalEntry] : [];
      } catch {
        return [];
      }
    });
  }

  // Every step that was intended, in the order it was applied.
  intents(): Step[] {
    return this.entries().flatMap((e) => (e.op === 'do' ? [e.step] : []));
  }

  remove(): void {
    removeIfExists(this.path);
  }
}
