import { describe, expect, it } from 'vitest';
import { refusal } from '../../../src/commands/move.js';

describe('move refusals', () => {
  it('refuses what is no process of the caller, one reason each', () => {
    expect(refusal('abc', undefined)).toMatch(/not a process id/);
    expect(refusal('1', undefined)).toMatch(/init process/);
    expect(refusal('2', undefined)).toMatch(/kernel thread/);
    expect(refusal('999999999', undefined)).toMatch(/no process/);
    // Under sudo: a process whose uids are not all the caller's (this test's own, as another uid).
    expect(refusal(String(process.ppid), { uid: (process.getuid?.() ?? 0) + 4242 })).toMatch(/not your process/);
    expect(refusal(String(process.ppid), { uid: process.getuid?.() ?? 0 })).toBeUndefined();
  });
});
