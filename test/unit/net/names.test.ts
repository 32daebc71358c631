import { describe, expect, it } from 'vitest';
import { UserError } from '../../../src/errors.js';
import { hostIfaceName, IFNAMSIZ_MAX, validateName } from '../../../src/net/names.js';

describe('validateName', () => {
  it.each(['slow', 'a', '0', 'vpn-2', 'my_ns', 'A9-_x', 'a'.repeat(64)])('accepts %j and returns it unchanged', (name) => {
    expect(validateName(name)).toBe(name);
  });

  it.each([
    ['empty', ''],
    ['dot', 'a.b'],
    ['only dots', '..'],
    ['slash', 'a/b'],
    ['path traversal', '../etc'],
    ['65 chars', 'a'.repeat(65)],
    ['leading dash', '-slow'],
    ['leading underscore', '_slow'],
    ['space', 'my ns'],
    ['trailing newline', 'slow\n'],
    ['colon', 'a:b'],
    ['non-ASCII', 'smörgås'],
  ])('rejects %s with a UserError naming the input', (_label, name) => {
    let caught: unknown;
    try {
      validateName(name);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(UserError);
    expect((caught as UserError).message).toContain(JSON.stringify(name));
    expect((caught as UserError).hint).toMatch(/letters, digits/);
  });
});

describe('hostIfaceName', () => {
  it('is nsr-NAME while that fits in 15 chars (names up to 11 chars)', () => {
    expect(hostIfaceName('slow')).toBe('nsr-slow');
    expect(hostIfaceName('a')).toBe('nsr-a');
    expect(hostIfaceName('abcdefghijk')).toBe('nsr-abcdefghijk');
  });

  it('hashes names of 12 chars or more into nsr.XXXX.hhhhhh', () => {
    const iface = hostIfaceName('abcdefghijkl');
    expect(iface).toMatch(/^nsr\.abcd\.[0-9a-f]{6}$/);
    expect(iface).toHaveLength(15);
  });

  it('never exceeds the kernel limit of 15 chars, for every valid length', () => {
    for (let len = 1; len <= 64; len++) {
      const name = 'x'.repeat(len);
      expect(hostIfaceName(name).length, `length ${len}`).toBeLessThanOrEqual(IFNAMSIZ_MAX);
    }
    expect(IFNAMSIZ_MAX).toBe(15);
  });

  it('is deterministic (teardown recomputes it)', () => {
    const name = 'a-rather-long-namespace-name';
    expect(hostIfaceName(name)).toBe(hostIfaceName(name));
  });

  it('gives different interfaces to long names that share a 20-char prefix', () => {
    const prefix = 'office-vpn-uplink-00';
    expect(prefix).toHaveLength(20);
    const a = hostIfaceName(`${prefix}-a`);
    const b = hostIfaceName(`${prefix}-b`);
    expect(a).not.toBe(b);
    // Also names that only differ after the first 4 chars (the visible part of the hashed form).
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) seen.add(hostIfaceName(`${prefix}${i}`));
    expect(seen.size).toBe(500);
  });

  it('never maps a long name onto a short name\'s interface', () => {
    const shorts = new Set<string>();
    const longs = new Set<string>();
    const alphabet = 'abcnsr-_.0129';
    // Short names that look like the hashed form as much as a valid name can.
    for (const n of ['nsr', 'abcd', 'abcd-123456', 'abcd_123456', 'r-abcd', 'abcdefghijk']) shorts.add(hostIfaceName(n));
    for (let i = 0; i < 300; i++) {
      const s = `abcd${alphabet[i % 7]}${i.toString(16)}`.replace(/\./g, '-').slice(0, 11);
      shorts.add(hostIfaceName(s));
      longs.add(hostIfaceName(`abcd-${i.toString().padStart(7, '0')}`));
    }
    for (const l of longs) expect(shorts.has(l), l).toBe(false);
    // Structurally: the 4th char tells the two forms apart.
    for (const s of shorts) expect(s[3]).toBe('-');
    for (const l of longs) expect(l[3]).toBe('.');
  });
});
