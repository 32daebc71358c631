// Failures in the middle of `up` leave nothing behind and say in one line what and how to fix:
// a run dir that fills up (a tiny tmpfs mounted over a run dir of the test's own, removed
// afterwards), and /etc/netns/NAME or its resolv.conf being something nsroute must not write
// through or over (a symlink, a dangling symlink, a file, a directory).
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, SLOW_GW, type Snapshot, type World } from '../world/world.js';
import { expectOk, expectUserError, marker, show, useWorld, waitForFile } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const ROUTE = ['--via', SLOW_GW, '--dns', DNS_SERVER];

// Fills the file system holding dir until nothing more fits.
function fill(dir: string): void {
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'fill')}`, 'bs=4096'], { stdio: 'ignore' });
  } catch {
    /* ENOSPC: full */
  }
}

describe('a run dir that fills up', () => {
  // A run dir of its own on a 256 KiB tmpfs, in the test's mount namespace (nsroute runs in
  // it too: nsenter --net keeps the mounts), unmounted afterwards also when the test fails.
  async function withTinyRunDir(fn: (env: Record<string, string>, run: string) => Promise<void>): Promise<void> {
    const run = join(w.dir, 'run-tiny');
    mkdirSync(run, { mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', `${w.prefix}tiny`, run]);
    try {
      await fn({ NSROUTE_RUN_DIR: run }, run);
    } finally {
      execFileSync('umount', [run]);
      rmSync(run, { recursive: true, force: true });
    }
  }

  it('in the middle of up: everything is rolled back, one line says what and how to fix it', async () => {
    const n = w.name('fu1');
    await withTinyRunDir(async (env, run) => {
      const pause = marker(w, 'fu1-pause');
      const up = w.spawnNsroute(['up', n, ...ROUTE, '--no-watch'], { env: { ...env, NSROUTE_TEST_PAUSE: `apply:0:${pause}` }, timeoutMs: 120_000 });
      await waitForFile(`${pause}.reached`, 60_000);
      fill(run);
      writeFileSync(pause, '');
      const r = await up.result;
      expect(r.exitCode, show(r)).toBe(1);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, show(r)).toHaveLength(1);
      expect(lines[0], show(r)).toMatch(new RegExp(`^nsroute: could not record ${n}: cannot write ${run}/ns/${n}/\\S+: no space left on device; everything set up for ${n} was undone; free space \\(or fix the file system\\) under ${run} and run the command again$`));
      expect(w.netnsExists(n)).toBe(false);
      expect(existsSync(`/etc/netns/${n}`)).toBe(false);
      expect(await w.snapshot()).toEqual(clean);
      expect(readdirSync(join(run, 'ns'))).toEqual([]);
      // With space again, the same command works and is undone exactly.
      rmSync(join(run, 'fill'));
      expectOk(await w.nsroute(['up', n, ...ROUTE, '--no-watch'], { env }));
      expectOk(await w.nsroute(['down', n], { env }));
    });
    expect(await w.snapshot()).toEqual(clean);
  });

  it('down still works with the run dir full', async () => {
    const n = w.name('fu3');
    await withTinyRunDir(async (env, run) => {
      expectOk(await w.nsroute(['up', n, ...ROUTE, '--no-watch'], { env }));
      fill(run);
      const down = await w.nsroute(['down', n], { env });
      expectOk(down);
      expect(w.netnsExists(n)).toBe(false);
      expect(readdirSync(join(run, 'ns'))).toEqual([]);
    });
    expect(await w.snapshot()).toEqual(clean);
  });

  it('before exec starts: one line, exit 125, nothing changed', async () => {
    const n = w.name('fu2');
    await withTinyRunDir(async (env, run) => {
      expectOk(await w.nsroute(['list'], { env })); // the lock file exists
      fill(run);
      const r = await w.nsroute(['exec', n, ...ROUTE, '--', 'true'], { env });
      expectUserError(r, 125);
      expect(r.stderr).toMatch(new RegExp(`^nsroute: could not record ${n}: cannot write ${run}/ns/${n}/state.json: no space left on device; nothing was changed; free space`));
      expect(w.netnsExists(n)).toBe(false);
    });
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('/etc/netns/NAME that nsroute must not write through or over', () => {
  const cases: [string, (etc: string, elsewhere: string) => void, RegExp][] = [
    ['a symlink to a directory', (etc, elsewhere) => symlinkSync(elsewhere, etc), / is a symbolic link; /],
    ['a dangling symlink', (etc, elsewhere) => symlinkSync(join(elsewhere, 'gone'), etc), / is a symbolic link to nothing; /],
    ['a regular file', (etc) => writeFileSync(etc, 'not a directory\n'), / is not a directory; /],
    ['a directory whose resolv.conf is a directory', (etc) => mkdirSync(join(etc, 'resolv.conf'), { recursive: true }), /\/resolv\.conf is a directory; /],
    ['a directory whose resolv.conf is a symlink', (etc, elsewhere) => (mkdirSync(etc), symlinkSync(join(elsewhere, 'target'), join(etc, 'resolv.conf'))), /\/resolv\.conf is a symbolic link; /],
  ];
  for (const [what, make, message] of cases) {
    it(`${what}: refused before the first change, one line naming it, nothing written through it`, async () => {
      const n = w.name('en1');
      const etc = `/etc/netns/${n}`;
      const elsewhere = join(w.dir, 'elsewhere');
      mkdirSync(elsewhere, { recursive: true });
      writeFileSync(join(elsewhere, 'target'), 'the user\'s\n');
      const madeEtcNetns = !existsSync('/etc/netns');
      mkdirSync('/etc/netns', { recursive: true, mode: 0o755 });
      try {
        make(etc, elsewhere);
        const exec = await w.nsroute(['exec', n, ...ROUTE, '--', 'true']);
        expectUserError(exec, 125);
        expect(exec.stderr).toMatch(message);
        expect(exec.stderr).toContain(etc);
        const up = await w.nsroute(['up', n, ...ROUTE, '--no-watch']);
        expectUserError(up, 2);
        expect(readdirSync(elsewhere).sort()).toEqual(['target']);
        expect(w.netnsExists(n)).toBe(false);
        const list = await w.nsroute(['list', '--json']);
        expect(JSON.parse(list.stdout), show(list)).toEqual([]);
        expect(await w.snapshot()).toEqual(clean);
      } finally {
        rmSync(etc, { recursive: true, force: true });
        rmSync(elsewhere, { recursive: true, force: true });
        if (madeEtcNetns && readdirSync('/etc/netns').length === 0) rmSync('/etc/netns', { recursive: true });
      }
    });
  }
});
