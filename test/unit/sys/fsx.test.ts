import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendLineSync, ensureTrustedDir, readRegularFile, readTrustedFile, UntrustedFile, writeFileAtomic } from '../../../src/sys/fsx.js';

// Files of nsroute's state: exact modes whatever the umask, never through a symlink, read only
// when root's alone. Needs root (chown), like nsroute.
let dir: string;
let umask: number;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nsroute-fsx-'));
  umask = process.umask(0);
});
afterEach(() => {
  process.umask(umask);
  rmSync(dir, { recursive: true, force: true });
});

describe('writeFileAtomic / appendLineSync', () => {
  it('give the exact mode under umask 000, and replace a symlink instead of writing through it', () => {
    const target = join(dir, 'target');
    writeFileSync(target, 'theirs\n');
    const path = join(dir, 'state.json');
    symlinkSync(target, path);
    writeFileAtomic(path, 'ours\n', 0o600);
    expect(readFileSync(target, 'utf8')).toBe('theirs\n');
    expect(statSync(path).mode & 0o7777).toBe(0o600);
    appendLineSync(join(dir, 'journal'), 'x');
    expect(statSync(join(dir, 'journal')).mode & 0o7777).toBe(0o600);
  });

  it('appendLineSync refuses a symlink and a file someone else owns', () => {
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'j1'));
    expect(() => appendLineSync(join(dir, 'j1'), 'x')).toThrow(UntrustedFile);
    writeFileSync(join(dir, 'j2'), '');
    chownSync(join(dir, 'j2'), 65534, 65534);
    expect(() => appendLineSync(join(dir, 'j2'), 'x')).toThrow(/owned by uid 65534/);
  });

  it('a failed write names the file and leaves no temp file', () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    writeFileSync(join(sub, 'x.tmp-' + process.pid), ''); // a leftover is replaced
    writeFileAtomic(join(sub, 'x'), 'ok');
    expect(readdirSync(sub)).toEqual(['x']);
    expect(() => writeFileAtomic(join(sub, 'x', 'y'), 'no')).toThrow(/^cannot write \S*\/sub\/x/);
  });
});

describe('readTrustedFile / readRegularFile', () => {
  it('read root-owned files nobody else can write; refuse the rest', () => {
    const p = join(dir, 'f');
    expect(readTrustedFile(p)).toBeUndefined();
    writeFileSync(p, 'ok', { mode: 0o644 });
    expect(readTrustedFile(p)).toBe('ok');
    chmodSync(p, 0o664);
    expect(() => readTrustedFile(p)).toThrow(/writable by its group/);
    chmodSync(p, 0o646);
    expect(() => readTrustedFile(p)).toThrow(/writable by everyone/);
    chmodSync(p, 0o644);
    chownSync(p, 65534, 0);
    expect(() => readTrustedFile(p)).toThrow(/owned by uid 65534/);
    symlinkSync(p, join(dir, 'l'));
    expect(() => readTrustedFile(join(dir, 'l'))).toThrow(/symbolic link/);
    mkdirSync(join(dir, 'd'));
    expect(() => readTrustedFile(join(dir, 'd'))).toThrow(/not a regular file/);
  });

  it('readRegularFile never follows a symlink nor blocks on a FIFO', async () => {
    writeFileSync(join(dir, 'f'), 'x');
    symlinkSync(join(dir, 'f'), join(dir, 'l'));
    expect(readRegularFile(join(dir, 'f'))).toBe('x');
    expect(readRegularFile(join(dir, 'l'))).toBeUndefined();
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    expect(readRegularFile(join(dir, 'fifo'))).toBeUndefined();
  });
});

describe('ensureTrustedDir', () => {
  it('creates missing dirs with exact modes under umask 000, and refuses unsafe ones', () => {
    const d = join(dir, 'a', 'b');
    ensureTrustedDir(d, 0o700, 'the run directory');
    expect(statSync(join(dir, 'a')).mode & 0o7777).toBe(0o755);
    expect(statSync(d).mode & 0o7777).toBe(0o700);
    chmodSync(d, 0o720);
    expect(() => ensureTrustedDir(d, 0o700, 'the run directory')).toThrow(/the run directory .* is writable by its group/);
    chmodSync(d, 0o700);
    chownSync(join(dir, 'a'), 65534, 65534);
    expect(() => ensureTrustedDir(d, 0o700, 'the run directory')).toThrow(/is inside .*\/a, which is owned by uid 65534/);
  });
});
