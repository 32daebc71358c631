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

  it('hashes names of 12 chars or more into nsr. + 11 base32 chars (55 bits of sha256)', () => {
    const iface = hostIfaceName('abcdefghijkl');
    // base32(sha256("abcdefghijkl")), first 11 chars (python: base64.b32encode(...).lower()[:11])
    expect(iface).toBe('nsr.22bo2tfe3ge');
    expect(hostIfaceName('x'.repeat(64))).toMatch(/^nsr\.[a-z2-7]{11}$/);
  });

  // Issue 10, finding 9: with 6 hex chars (24 bits) two colliding names were found in under a
  // second; among 200k names a 24-bit hash has ~1200 collisions, a 55-bit one ~5e-7 expected.
  it('gives 200k different long names 200k different interfaces', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200_000; i++) seen.add(hostIfaceName(`office-vpn-${i.toString(36).padStart(8, '0')}`));
    expect(seen.size).toBe(200_000);
  });

  it('gives further deterministic candidates (attempt > 0), always hashed, all distinct', () => {
    for (const name of ['slow', 'abcdefghijk', 'a-rather-long-namespace-name']) {
      const all = Array.from({ length: 16 }, (_, i) => hostIfaceName(name, i));
      expect(new Set(all).size, name).toBe(16);
      for (const c of all.slice(1)) expect(c).toMatch(/^nsr\.[a-z2-7]{11}$/);
      expect(hostIfaceName(name, 3)).toBe(all[3]);
    }
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
