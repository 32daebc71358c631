// The holder records of lock-free joins (src/state/joins.ts, RUN/joins): gc removes those of
// execs that are gone, and the temp files such an exec left while writing one; those of live
// execs stay. Each test uses its own run dir. Needs root, like nsroute (the run dir must be
// root's alone).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordJoin, removeDeadJoins } from '../../../src/state/joins.js';
import { processStartTime } from '../../../src/sys/proc.js';

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'nsroute-joins-'));
  process.env.NSROUTE_RUN_DIR = join(base, 'run');
});
afterEach(() => {
  delete process.env.NSROUTE_RUN_DIR;
  rmSync(base, { recursive: true, force: true });
});

describe('removeDeadJoins', () => {
  it('removes the records of execs that are gone and the temp files they were writing, and keeps those of live ones', () => {
    const self = { pid: process.pid, startTime: processStartTime(process.pid)!, command: ['true'], user: 'root', since: new Date().toISOString() };
    recordJoin('n1', self);
    // A process that has ended: its pid with its start time names nothing alive.
    const gone = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
    const dead = Number(gone.stdout.trim());
    expect(dead).toBeGreaterThan(0);
    const dir = join(base, 'run', 'joins');
    const live = `n1.${self.pid}.${self.startTime}`;
    writeFileSync(join(dir, `n1.${dead}.12345`), '{}\n', { mode: 0o600 });
    writeFileSync(join(dir, `n1.${dead}.12345.tmp-${dead}`), '{"pi', { mode: 0o600 });
    writeFileSync(join(dir, `${live}.tmp-${self.pid}`), '{"pi', { mode: 0o600 });
    writeFileSync(join(dir, 'not-a-record'), '', { mode: 0o600 });
    removeDeadJoins();
    expect(readdirSync(dir).sort()).toEqual([live, `${live}.tmp-${self.pid}`, 'not-a-record'].sort());
  });
});
