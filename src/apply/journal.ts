import { trace } from '../sys/trace.js';
import { dirname } from 'node:path';
import type { Step } from '../plan/types.js';
import { appendLineSync, ensureTrustedSubdir, readTrustedFile, removeIfExists } from '../sys/fsx.js';

// Write-ahead journal of one namespace: the intent of each step is on disk (fsync) before the
// step runs, and marked done after. Undo replays every intent backwards, done or not, so a
// crash at any instant (even inside a non-atomic `ip -batch`) can be undone. Only the intents
// are fsynced: after a crash of the machine they are what undoes the files that outlive it
// (state/store.ts forgets an earlier boot's namespace, not its files); 'created' and 'done'
// speak of kernel objects of this boot, and a crash of nsroute alone loses no written line.
// (Ten fsyncs fewer per cold exec, each one a wait under the host lock on a busy disk.)
// 'created': what identifies an object the step created, written right after creating it and
// before 'done' (the nsfs inode of a namespace, net/proc.ts netnsInode): undo removes only that.
// netnsCtime: the nsfs inode's ctime (ns, as text): inode numbers of namespaces are reused once
// one is freed, the pair is not.
export type JournalEntry = { op: 'do'; i: number; step: Step } | { op: 'created'; i: number; netnsIno: number; netnsCtime?: string } | { op: 'done'; i: number };

// Whose namespace NAME is, as far as the journal knows: the inode nsroute created it with;
// 'legacy' for a journal of an nsroute that did not record it (the create is done, nothing more
// is known; treated as before: by name); 'unknown' when the create was intended but its inode
// never recorded (a crash right after \`ip netns add\`, or \`ip netns add\` failed because the
// name was taken meanwhile): then nothing proves the namespace at that name is nsroute's.
export type NetnsOwnership = { ino: number; ctime?: string } | 'legacy' | 'unknown' | 'none';

export class Journal {
  constructor(readonly path: string) {}

  intend(i: number, step: Step): void {
    ensureTrustedSubdir(dirname(this.path), 0o700);
    appendLineSync(this.path, JSON.stringify({ op: 'do', i, step } satisfies JournalEntry));
  }

  // Several intents in one write and one fsync (the combined apply, apply.ts): all of them are
  // on disk before any of their steps runs.
  intendAll(steps: readonly Step[]): void {
    if (steps.length === 0) return;
    ensureTrustedSubdir(dirname(this.path), 0o700);
    appendLineSync(this.path, steps.map((step, i) => JSON.stringify({ op: 'do', i, step } satisfies JournalEntry)).join('\n'));
  }

  created(i: number, netnsIno: number, netnsCtime?: string): void {
    appendLineSync(this.path, JSON.stringify({ op: 'created', i, netnsIno, ...(netnsCtime ? { netnsCtime } : {}) } satisfies JournalEntry), 0o600, false);
  }

  netnsOwnership(): NetnsOwnership {
    const entries = this.entries();
    const add = entries.find((e) => e.op === 'do' && e.step.kind === 'netns-add');
    if (!add) return 'none';
    const created = entries.find((e) => e.op === 'created' && e.i === add.i);
    if (created?.op === 'created') return { ino: created.netnsIno, ...(created.netnsCtime ? { ctime: created.netnsCtime } : {}) };
    return entries.some((e) => e.op === 'done' && e.i === add.i) ? 'legacy' : 'unknown';
  }

  done(i: number): void {
    appendLineSync(this.path, JSON.stringify({ op: 'done', i } satisfies JournalEntry), 0o600, false);
  }

  // A journal someone other than root could have written is never acted on: its undo
  // would delete whatever it names (fsx.ts `readTrustedFile` throws UntrustedFile).
  entries(): JournalEntry[] {
    trace({ ev: 'journal-read', path: this.path });
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
