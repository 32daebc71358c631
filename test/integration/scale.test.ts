// Many namespaces on one host: the nft table is changed one namespace's elements at a time
// (nft-member step) and stays exactly what a whole render of the same namespaces gives; a
// flushed ruleset comes back whole with every namespace's elements; a journal of the earlier
// nft-sync step is still undone exactly; and the work a command does per other namespace does
// not grow: a cold exec reads every state file once (NSROUTE_TRACE).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, SLOW_GW, waitFor, type Snapshot, type World } from '../world/world.js';
import { expectOk, hostWatcherPid, show, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const ROUTE = ['--via', SLOW_GW, '--dns', DNS_SERVER];

// nsroute's table in the fake host, handles dropped and set elements sorted (a hash set lists
// its elements in any order): equal strings are equal tables. 'absent' when there is none.
async function table(): Promise<string> {
  const r = await w.inHost(['nft', '-j', 'list', 'table', 'inet', 'nsroute']);
  if (r.exitCode !== 0) return 'absent';
  const items = (JSON.parse(r.stdout) as { nftables: Record<string, Record<string, unknown>>[] }).nftables.flatMap((it) =>
    Object.entries(it).flatMap(([k, v]) => {
      if (k === 'metainfo') return [];
      const { handle: _h, ...rest } = v;
      if (Array.isArray(rest.elem)) rest.elem = (rest.elem as unknown[]).map((e) => JSON.stringify(e)).sort();
      return [JSON.stringify([k, rest])];
    }),
  );
  return items.sort().join('\n');
}

function ifaces(t: string): string[] {
  const set = t.split('\n').find((l) => l.includes('"ns_ifaces"'));
  return set ? ((JSON.parse(set) as [string, { elem?: string[] }])[1].elem ?? []).map((e) => JSON.parse(e) as string) : [];
}

async function up(name: string): Promise<void> {
  expectOk(await w.nsroute(['up', name, ...ROUTE, '--no-watch']));
}

async function down(name: string): Promise<void> {
  expectOk(await w.nsroute(['down', name]));
}

// The table a whole render gives for the NAMEs up now (gc renders it whole).
async function wholeTable(): Promise<string> {
  expectOk(await w.nsroute(['gc']));
  return table();
}

describe('the nft table, one namespace at a time', () => {
  it('up a, up b, down a, down b: each step leaves exactly the whole render of the NAMEs up', async () => {
    const [a, b] = [w.name('ta'), w.name('tb')];
    await up(a);
    const ta = await table();
    expect(ifaces(ta)).toHaveLength(1);
    expect(await wholeTable()).toBe(ta);
    await up(b);
    const tab = await table();
    expect(ifaces(tab)).toHaveLength(2);
    expect(await wholeTable(), 'after up b').toBe(tab);
    await down(a);
    const tb = await table();
    expect(ifaces(tb)).toHaveLength(1);
    expect(tb).not.toBe(ta);
    expect(await wholeTable(), 'after down a').toBe(tb);
    await down(b);
    expect(await table(), 'the table goes with the last NAME').toBe('absent');
    expect(await w.snapshot()).toEqual(clean);
  });

  it('nft flush ruleset: the next command on one NAME restores every NAME\'s elements', async () => {
    const names = [w.name('fa'), w.name('fb'), w.name('fc')];
    for (const n of names) await up(n);
    const before = await table();
    expect(ifaces(before)).toHaveLength(3);
    expectOk(await w.inHost(['nft', 'flush', 'ruleset'])); // the fake host's ruleset, not the machine's
    expect(await table()).toBe('absent');
    expectOk(await w.nsroute(['up', names[1]!, ...ROUTE, '--no-watch'])); // joins: repairs
    expect(await table()).toBe(before);
    // A table that lost only one NAME's elements gets them back from that NAME's repair.
    const iface = ifaces(before)[0]!;
    expectOk(await w.inHost(['nft', 'delete', 'element', 'inet', 'nsroute', 'ns_ifaces', `{ "${iface}" }`]));
    const owner = names.find((n) => readFileSync(join(w.runDir, 'ns', n, 'state.json'), 'utf8').includes(`"hostIface": "${iface}"`))!;
    expectOk(await w.nsroute(['up', owner, ...ROUTE, '--no-watch']));
    expect(await table()).toBe(before);
    for (const n of names) await down(n);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a journal written with the earlier nft-sync step is still undone exactly', async () => {
    const [old, other] = [w.name('oa'), w.name('ob')];
    await up(other);
    const withOther = await table();
    await up(old);
    // What the earlier version wrote: the same steps, with nft-sync in place of nft-member.
    const journal = join(w.runDir, 'ns', old, 'journal.jsonl');
    const text = readFileSync(journal, 'utf8');
    expect(text).toContain('"kind":"nft-member"');
    writeFileSync(journal, text.replace(/\{"kind":"nft-member"[^}]*\}/g, '{"kind":"nft-sync"}'));
    await down(old);
    expect(await table(), 'the other NAME\'s elements stay, exactly').toBe(withOther);
    // And as the last NAME: the table goes.
    await up(old);
    const text2 = readFileSync(journal, 'utf8');
    writeFileSync(journal, text2.replace(/\{"kind":"nft-member"[^}]*\}/g, '{"kind":"nft-sync"}'));
    await down(other);
    await down(old);
    expect(await table()).toBe('absent');
    expect(await w.snapshot()).toEqual(clean);
  });
});

// NSROUTE_TRACE lines (src/sys/trace.ts): {pid, t, ev, ...}; one file per command here.
interface TraceEvent {
  pid: number;
  t: number;
  ev: string;
  op?: string;
}

// One cold exec with NSROUTE_TRACE: its state-file reads and host-lock takes.
async function tracedColdExec(tag: string): Promise<{ reads: number; indexReads: number; sections: number; n: number }> {
  const n = readdirSync(join(w.runDir, 'ns')).filter((d) => !d.startsWith('.')).length;
  const file = join(w.dir, `trace-${tag}.jsonl`);
  const r = await w.nsroute(['exec', w.name(`x${tag}`), ...ROUTE, '--', 'true'], { env: { NSROUTE_TRACE: file } });
  expect(r.exitCode, show(r)).toBe(0);
  const events = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TraceEvent);
  return {
    reads: events.filter((e) => e.ev === 'state-read').length,
    indexReads: events.filter((e) => e.ev === 'state-index-read').length,
    sections: events.filter((e) => e.ev === 'lock' && e.op === 'acquire').length,
    n,
  };
}

describe('work per other namespace does not grow', () => {
  it('a cold exec reads each state file once, at N=2 and at N=20', async () => {
    const many = Array.from({ length: 20 }, (_, i) => w.name(`n${i}`));
    for (const n of many.slice(0, 2)) await up(n);
    const at2 = await tracedColdExec('2');
    for (const n of many.slice(2)) await up(n);
    const at20 = await tracedColdExec('20');
    expect(at20.n - at2.n).toBe(18);
    // Each state file once per command: at start-up (cli.ts loadIds reads the uplink ids every
    // state records), kept for the lock sections while no other process changed a state
    // (RUN/generation), plus the exec's own NAME. Before the cache, every step re-read all N
    // (~9 x N per cold exec).
    const bound = (t: { n: number }) => t.n + 3;
    expect(at2.reads, JSON.stringify(at2)).toBeLessThanOrEqual(bound(at2));
    expect(at20.reads, JSON.stringify(at20)).toBeLessThanOrEqual(bound(at20));
    // And here, where the last change was an `up` of nsroute's, none of the others at all:
    // the index (RUN/states) that up left holds them all, for this generation.
    expect(at20.indexReads, JSON.stringify(at20)).toBe(1);
    expect(at20.reads, JSON.stringify(at20)).toBeLessThanOrEqual(3);
    expect(at20.sections, 'lock sections do not depend on N').toBe(at2.sections);
    // list --json: the index the exec's teardown left, no state file.
    const file = join(w.dir, 'trace-list.jsonl');
    const l = await w.nsroute(['list', '--json'], { env: { NSROUTE_TRACE: file } });
    expect(l.exitCode, show(l)).toBe(0);
    expect((JSON.parse(l.stdout) as unknown[]).length).toBe(at20.n);
    const listEvents = readFileSync(file, 'utf8').trim().split('\n').map((x) => JSON.parse(x) as TraceEvent);
    expect(listEvents.filter((e) => e.ev === 'state-index-read').length, 'index reads by list --json').toBe(1);
    expect(listEvents.filter((e) => e.ev === 'state-read').length, 'state files read by list --json').toBe(0);
    // Without a valid index (another generation), every state file once, and the read leaves
    // an index for the next command.
    writeFileSync(join(w.runDir, 'generation'), 'nsroute-test-other-generation\n', { mode: 0o600 });
    const file2 = join(w.dir, 'trace-list2.jsonl');
    const l2 = await w.nsroute(['list', '--json'], { env: { NSROUTE_TRACE: file2 } });
    expect(JSON.parse(l2.stdout)).toEqual(JSON.parse(l.stdout));
    const list2 = readFileSync(file2, 'utf8').trim().split('\n').map((x) => JSON.parse(x) as TraceEvent);
    expect(list2.filter((e) => e.ev === 'state-read').length).toBe(at20.n);
    expect(list2.filter((e) => e.ev === 'state-index-read').length).toBe(0);
    const file3 = join(w.dir, 'trace-list3.jsonl');
    const l3 = await w.nsroute(['list', '--json'], { env: { NSROUTE_TRACE: file3 } });
    expect(JSON.parse(l3.stdout)).toEqual(JSON.parse(l.stdout));
    expect(readFileSync(file3, 'utf8').split('\n').filter((x) => x.includes('"state-read"')).length).toBe(0);
    // and no journal: the state records which namespace is NAME's (for the processes in it).
    expect(listEvents.filter((e) => e.ev === 'journal-read'), 'journals read by list --json').toEqual([]);
    // A hot exec into a NAME the host watcher keeps (a lock-free join) reads its own state and
    // nothing of the other 20: it plans nothing, so it reads no id bases either.
    const hot = w.name('hot');
    expectOk(await w.nsroute(['up', hot, ...ROUTE]));
    await waitFor(() => hostWatcherPid(w) !== undefined, 'the host watcher');
    const file4 = join(w.dir, 'trace-hot.jsonl');
    const h = await w.nsroute(['exec', hot, '--', 'true'], { env: { NSROUTE_TRACE: file4 } });
    expect(h.exitCode, show(h)).toBe(0);
    const hotEvents = readFileSync(file4, 'utf8').trim().split('\n').map((x) => JSON.parse(x) as TraceEvent);
    expect(hotEvents.filter((e) => e.ev === 'lock'), 'a lock-free join').toEqual([]);
    expect(hotEvents.filter((e) => e.ev === 'state-index-read').length, 'index reads by a hot exec').toBe(0);
    expect(hotEvents.filter((e) => e.ev === 'state-read').length, 'state files read by a hot exec').toBeLessThanOrEqual(1);
    expectOk(await w.nsroute(['down', hot]));
    for (const n of many) await down(n);
    expect(await w.snapshot()).toEqual(clean);
  });
});
