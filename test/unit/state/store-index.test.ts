// The states index (src/state/store.ts, RUN/states): one file holding every state file's text
// as of one generation, read instead of the N files by the next command. It must never stand
// for anything but the state files as they are: a generation moved on, a NAME added or
// removed, a state file edited, chmodded, replaced or removed by hand, and an index that is
// torn or not root's alone all send the reader back to the files. Each "command" here is a
// fresh copy of the modules (vi.resetModules), as a new process would be. Needs root.
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

let base: string;
let run: string;
let traceFile: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'nsroute-store-index-'));
  run = join(base, 'run');
  traceFile = join(base, 'trace');
  process.env.NSROUTE_RUN_DIR = run;
  process.env.NSROUTE_TRACE = traceFile;
});
afterEach(() => {
  delete process.env.NSROUTE_RUN_DIR;
  delete process.env.NSROUTE_TRACE;
  rmSync(base, { recursive: true, force: true });
});

const NAMES = ['ia', 'ib', 'ic'];

// A new command: fresh modules.
async function command() {
  vi.resetModules();
  const store = await import('../../../src/state/store.js');
  const lock = await import('../../../src/state/lock.js');
  const proc = await import('../../../src/sys/proc.js');
  return { ...store, ...lock, bootId: proc.bootId };
}

async function stateOf(name: string, extra: Record<string, unknown> = {}) {
  const { bootId } = await command();
  return { version: 1 as const, name, status: 'up' as const, persistent: true, createdAt: '2026-11-28T00:00:00.000Z', bootId: bootId(), config: { name, mode: 'nat' } as never, holders: [], ...extra };
}

// What commands do: a full read at start-up, then states written under the lock.
async function writeAll(names = NAMES): Promise<void> {
  const states = await Promise.all(names.map((n) => stateOf(n)));
  const c = await command();
  c.allStates();
  await c.withHostLock(async () => {
    c.allStates();
    for (const st of states) c.writeState(st);
  });
}

// A full read by a new command: the states (by name), and whether it used the index.
async function readAll(): Promise<{ names: string[]; indexReads: number; fileReads: number; states: Record<string, unknown>[] }> {
  writeFileSync(traceFile, '');
  const c = await command();
  const states = c.allStates() as unknown as Record<string, unknown>[];
  const events = readFileSync(traceFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { ev: string });
  return {
    names: states.map((s) => s.name as string),
    indexReads: events.filter((e) => e.ev === 'state-index-read').length,
    fileReads: events.filter((e) => e.ev === 'state-read').length,
    states,
  };
}

const index = () => join(run, 'states');
const stateFile = (n: string) => join(run, 'ns', n, 'state.json');

describe('the states index', () => {
  it('is written by the lock section that changed the states, and the next command reads it instead of the files', async () => {
    await writeAll();
    expect(existsSync(index())).toBe(true);
    const r = await readAll();
    expect(r).toMatchObject({ names: NAMES, indexReads: 1, fileReads: 0 });
    expect(r.states).toEqual(await Promise.all(NAMES.map((n) => stateOf(n))));
  });

  it('a full read without a valid one reads the files and writes one for the next command', async () => {
    await writeAll();
    rmSync(index());
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 1, fileReads: 0 });
  });

  const byHand: [string, () => void, (r: Awaited<ReturnType<typeof readAll>>) => void][] = [
    [
      'a state file edited in place',
      () => writeFileSync(stateFile('ib'), readFileSync(stateFile('ib'), 'utf8').replace('"persistent": true', '"persistent": false')),
      (r) => expect(r.states.find((s) => s.name === 'ib')?.persistent).toBe(false),
    ],
    ['a state file removed', () => rmSync(stateFile('ib')), (r) => expect(r.names).toEqual(['ia', 'ic'])],
    [
      'a state file replaced by a copy of another',
      () => {
        copyFileSync(stateFile('ia'), `${stateFile('ib')}.new`);
        chmodSync(`${stateFile('ib')}.new`, 0o600);
        renameSync(`${stateFile('ib')}.new`, stateFile('ib'));
      },
      (r) => expect(r.names).toEqual(['ia', 'ia', 'ic']),
    ],
    ['a NAME with just a journal added', () => (mkdirSync(join(run, 'ns', 'id'), { mode: 0o700 }), appendFileSync(join(run, 'ns', 'id', 'journal.jsonl'), '')), (r) => expect(r.names).toEqual(NAMES)],
  ];
  for (const [what, spoil, check] of byHand) {
    it(`${what}: the files are read, as they are now`, async () => {
      await writeAll();
      spoil();
      const r = await readAll();
      expect(r.indexReads).toBe(0);
      check(r);
    });
  }

  it('a state file made writable by others is refused as without an index', async () => {
    await writeAll();
    chmodSync(stateFile('ic'), 0o620);
    const c = await command();
    expect(() => c.allStates()).toThrow(/nsroute does not trust it/);
  });

  it('another generation: the files', async () => {
    await writeAll();
    writeFileSync(join(run, 'generation'), 'some-other-generation\n', { mode: 0o600 });
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
  });

  it('a torn index, or one not root\'s alone, is ignored: the files', async () => {
    await writeAll();
    const whole = readFileSync(index());
    writeFileSync(index(), whole.subarray(0, whole.length - 20), { mode: 0o600 });
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
    chmodSync(index(), 0o664); // (the read above wrote a whole one again)
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
  });

  it('an index missing its last state (cut at an entry, its end line put back) or with a wrong length is ignored: the files', async () => {
    await writeAll();
    const whole = readFileSync(index(), 'utf8');
    expect(whole.startsWith('nsroute-states 2\n')).toBe(true);
    const last = whole.lastIndexOf('\nic\t');
    expect(last).toBeGreaterThan(0);
    writeFileSync(index(), `${whole.slice(0, last + 1)}end\n`, { mode: 0o600 });
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
    // (the read above wrote a whole one again)
    const again = readFileSync(index(), 'utf8');
    writeFileSync(index(), again.replace(/^(ia\t[^\t]+\t)(\d+)$/m, (_m, head: string, n: string) => `${head}${Number(n) - 1}`), { mode: 0o600 });
    expect(readFileSync(index(), 'utf8')).not.toBe(again);
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
  });

  it('an index naming a NAME with no entry while that NAME has a state file is ignored: the files', async () => {
    await writeAll();
    const whole = readFileSync(index(), 'utf8');
    const m = /^ib\t[^\t]+\t(\d+)\n/m.exec(whole)!;
    const cut = whole.slice(0, m.index) + whole.slice(m.index + m[0].length + Number(m[1]));
    writeFileSync(index(), cut.replace('"count":3', '"count":2'), { mode: 0o600 });
    expect(readFileSync(index(), 'utf8')).toContain('"names":["ia","ib","ic"],"count":2');
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
  });

  // A writer moves the run dir's generation on before it changes a state: a read overlapping
  // the change carries the generation that stays. Only the host lock says nobody was inside.
  it('a full read while someone holds the host lock is kept nowhere: no index, the next command reads the files', async () => {
    await writeAll();
    rmSync(index());
    const record = (gen: number, held: boolean) => writeFileSync(join(run, 'lock'), JSON.stringify({ pid: 1, startTime: 1, argv: [], gen, held }) + '\n', { mode: 0o600 });
    record(7, true);
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
    expect(existsSync(index())).toBe(false);
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
    record(8, false);
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 0, fileReads: 3 });
    expect(await readAll()).toMatchObject({ names: NAMES, indexReads: 1, fileReads: 0 });
  });

  // The states a command read are parsed once: a second full read, and a lock section of the
  // same generation, return those very objects (each a new array); a write makes new ones and
  // leaves the objects earlier readers hold as they were.
  it('one command parses each state once, until one is written', async () => {
    await writeAll();
    const c = await command();
    const first = c.allStates();
    const again = c.allStates();
    expect(again).not.toBe(first);
    expect(again.map((s) => s.name)).toEqual(NAMES);
    NAMES.forEach((_, i) => expect(again[i]).toBe(first[i]));
    await c.withHostLock(async () => {
      const locked = c.allStates();
      NAMES.forEach((_, i) => expect(locked[i]).toBe(first[i]));
      expect(c.readState('ib')).not.toBe(first[1]);
      c.writeState({ ...first[1]!, persistent: false });
      expect(c.allStates()[1]).not.toBe(first[1]);
      expect(c.allStates()[1]!.persistent).toBe(false);
    });
    expect(first[1]!.persistent).toBe(true);
    const after = c.allStates();
    expect(after[0]).not.toBe(first[0]);
    expect(after[1]!.persistent).toBe(false);
  });

  it('a lock section that only read writes none; one that removed a NAME leaves an index without it', async () => {
    await writeAll();
    rmSync(index());
    let c = await command();
    await c.withHostLock(async () => {
      c.allStates();
    });
    expect(existsSync(index())).toBe(false);
    c = await command();
    c.allStates();
    await c.withHostLock(async () => {
      c.allStates();
      c.removeNamespaceDir('ib');
    });
    expect(await readAll()).toMatchObject({ names: ['ia', 'ic'], indexReads: 1, fileReads: 0 });
  });
});
