// The parsing behind the batched reads and undo (sys/ip.ts, apply/executors.ts): what
// `ip -j -batch` prints is one JSON array per successful line, concatenated.
import { describe, expect, it } from 'vitest';
import { failedBatchLines, onlyGone, splitJsonArrays } from '../../../src/sys/ip.js';
import { guardJsonOfNumeric } from '../../../src/apply/executors.js';
import { currentGuardRules } from '../../../src/plan/guard.js';

describe('splitJsonArrays', () => {
  it('splits concatenated arrays, also with newlines and empty ones', () => {
    expect(splitJsonArrays('[{"a":1}][]\n[{"b":[2,3]}]\n')).toEqual([[{ a: 1 }], [], [{ b: [2, 3] }]]);
  });

  it('is not cut by brackets inside strings (an alias may hold "][")', () => {
    expect(splitJsonArrays('[{"ifalias":"x][y\\"]["}][1]')).toEqual([[{ ifalias: 'x][y"][' }], [1]]);
  });

  it('refuses a truncated answer', () => {
    expect(() => splitJsonArrays('[{"a":1}][{"b":')).toThrow();
    expect(() => splitJsonArrays('[{"a":1}]\n[{"b":\n')).toThrow();
  });

  it("reads iproute2's layout (one array per line) line by line, with the same result as the scan", () => {
    const arrays = [[{ ifname: 'lo', ifalias: 'x][y"][\n' }], [], [{ priority: 0, table: 'local' }]];
    const asIpPrintsIt = arrays.map((a) => JSON.stringify(a) + '\n').join('');
    expect(splitJsonArrays(asIpPrintsIt)).toEqual(arrays);
    expect(splitJsonArrays(asIpPrintsIt.replaceAll('\n', ''))).toEqual(arrays);
    // Pretty-printed (ip -p): arrays over many lines are scanned.
    expect(splitJsonArrays(arrays.map((a) => JSON.stringify(a, null, 2)).join('\n'))).toEqual(arrays);
  });
});

describe('failedBatchLines and onlyGone', () => {
  it('reads the failed line numbers', () => {
    expect(failedBatchLines('Device "x" does not exist.\nCommand failed -:2\nRTNETLINK answers: File exists\nCommand failed -:5\n')).toEqual([2, 5]);
  });

  it('accepts "already gone" answers only', () => {
    expect(onlyGone('Cannot find device "nsr1"; Command failed -:1; RTNETLINK answers: No such file or directory; Command failed -:3')).toBe(true);
    expect(onlyGone('RTNETLINK answers: Operation not permitted; Command failed -:1')).toBe(false);
  });
});

describe('guardJsonOfNumeric', () => {
  it('turns `ip -j -4 -N -d rule show` into what the guard reader knows', () => {
    const numeric = [
      { priority: 0, src: 'all', table: '255', protocol: '2' },
      { priority: 4202, src: '10.231.0.0', srclen: 29, action: '7', protocol: '0' },
      { priority: 4203, src: 'all', nop: null, protocol: '0' },
      // Another tool's rule of the same shape but its own protocol stays foreign.
      { priority: 4202, src: '10.9.0.0', srclen: 30, action: '7', protocol: 'static' },
    ];
    expect(currentGuardRules(guardJsonOfNumeric(numeric))).toEqual(['pref 4202 from 10.231.0.0/29 unreachable', 'pref 4203 nop']);
  });
});
