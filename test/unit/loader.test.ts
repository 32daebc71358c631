// The loader's crc32 (src/loader.ts), which checks a code cache against the chunk it was made
// from, is node:zlib's without loading node:zlib: the same values, also where node:zlib's
// own path is taken.
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../../src/loader.js';

describe('the loader\'s crc32', () => {
  it('gives node:zlib\'s values', () => {
    const inputs = [Buffer.alloc(0), Buffer.from('a'), Buffer.from('nsroute-code-cache-1\n'), Buffer.alloc(300_000, 0xa5), Buffer.from(Array.from({ length: 4099 }, (_, i) => (i * 31) & 0xff))];
    for (const b of inputs) expect(crc32(b), b.subarray(0, 20).toString('hex')).toBe(zlibCrc32(b));
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926); // the standard check value
  });
});
