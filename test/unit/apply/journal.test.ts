import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Journal } from '../../../src/apply/journal.js';
import type { Step } from '../../../src/plan/types.js';

const STEPS: Step[] = [
  { kind: 'netns-add', name: 'slow' },
  { kind: 'veth-add', netns: 'slow', hostIface: 'nsr-slow', nsIface: 'eth0', hostCidr: '10.231.0.1/30', tag: 'nsroute:ns=slow:persistent=0' },
  { kind: 'ns-config', netns: 'slow', nsIface: 'eth0', nsCidr: '10.231.0.2/30', gateway: '10.231.0.1' },
  { kind: 'netns-files', netns: 'slow', files: { 'resolv.conf': '# x\nnameserver 192.168.2.1\n', 'gai.conf': 'precedence ::ffff:0:0/96 100\n' } },
  { kind: 'ip-forward' },
  { kind: 'uplink-route', uplink: { via: '192.168.2.1', dev: 'eth1', table: 7101, mark: 0x6e720001, pref: 4200 } },
  { kind: 'nft-sync' },
];

describe('Journal', () => {
  let dir: string;
  let path: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nsroute-journal-'));
    path = join(dir, 'ns', 'slow', 'journal.jsonl'); // parent dirs do not exist yet
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('has no entries before anything was written', () => {
    const j = new Journal(path);
    expect(j.entries()).toEqual([]);
    expect(j.intents()).toEqual([]);
  });

  it('returns intents in the order they were applied, done or not', () => {
    const j = new Journal(path);
    for (const [i, s] of STEPS.entries()) {
      j.intend(i, s);
      if (i < STEPS.length - 1) j.done(i); // the last one was intended, then the process died
    }
    expect(j.intents()).toEqual(STEPS);
    expect(new Journal(path).intents()).toEqual(STEPS); // read back by a fresh process
  });

  it('writes one line per entry, intent before done', () => {
    const j = new Journal(path);
    j.intend(0, STEPS[0]!);
    j.done(0);
    j.intend(1, STEPS[3]!); // file contents with newlines must stay on one line
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe('');
    expect(j.entries()).toEqual([
      { op: 'do', i: 0, step: STEPS[0] },
      { op: 'done', i: 0 },
      { op: 'do', i: 1, step: STEPS[3] },
    ]);
  });

  it('ignores a torn last line and keeps everything before it', () => {
    const j = new Journal(path);
    j.intend(0, STEPS[0]!);
    j.done(0);
    j.intend(1, STEPS[1]!);
    const full = JSON.stringify({ op: 'do', i: 2, step: STEPS[2] });
    appendFileSync(path, full.slice(0, full.length / 2)); // crash mid-write
    expect(j.intents()).toEqual([STEPS[0], STEPS[1]]);
    expect(j.entries()).toHaveLength(3);
  });

  it('ignores a torn first line (crash during the very first write)', () => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, '{"op":"do","i":0,"step":{"kind":"netns-a');
    expect(new Journal(path).intents()).toEqual([]);
  });

  it('remove() deletes the journal, is idempotent, and a new journal starts empty', () => {
    const j = new Journal(path);
    j.intend(0, STEPS[0]!);
    expect(existsSync(path)).toBe(true);
    j.remove();
    expect(existsSync(path)).toBe(false);
    expect(j.intents()).toEqual([]);
    expect(() => j.remove()).not.toThrow();
    const again = new Journal(path);
    again.intend(0, STEPS[1]!);
    expect(again.intents()).toEqual([STEPS[1]]);
  });

  // Issue #10, finding 4: undo deletes /run/netns/NAME only if it is the namespace it created.
  describe('netnsOwnership', () => {
    it('is the inode recorded right after the namespace was created', () => {
      const j = new Journal(path);
      j.intend(0, STEPS[0]!);
      j.created(0, 4026532999);
      j.done(0);
      j.intend(1, STEPS[1]!);
      expect(j.netnsOwnership()).toEqual({ ino: 4026532999 });
    });

    it('is unknown when the create was intended but no inode recorded (crash, or ip netns add failed)', () => {
      const j = new Journal(path);
      j.intend(0, STEPS[0]!);
      expect(j.netnsOwnership()).toBe('unknown');
    });

    it('is legacy for a finished create of an nsroute that did not record inodes', () => {
      const j = new Journal(path);
      j.intend(0, STEPS[0]!);
      j.done(0);
      expect(j.netnsOwnership()).toBe('legacy');
    });

    it('is none without a netns-add step', () => {
      const j = new Journal(path);
      j.intend(0, { kind: 'ip-forward' });
      expect(j.netnsOwnership()).toBe('none');
    });
  });
});
