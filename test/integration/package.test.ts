// The installed Debian package, as a user meets it: `nsroute --version`, `man -w nsroute`,
// completion from the installed bash script, and one `exec` in the test world with the
// installed /usr/bin/nsroute. Runs only when .ci/run has installed the package and sets
// NSROUTE_TEST_INSTALLED=1 with NSROUTE_TEST_BIN=/usr/bin/nsroute (npm test skips it).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, NSROUTE_JS, REPO_ROOT, SLOW_GW, type Snapshot, type World } from '../world/world.js';
import { PATH4, expectOk, show, useWorld } from '../world/helpers.js';

const installed = process.env.NSROUTE_TEST_INSTALLED === '1';

describe.runIf(installed)('the installed package', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

  it('is what the tests run, and reports the version of this checkout', () => {
    expect(NSROUTE_JS).toBe('/usr/bin/nsroute');
    expect(realpathSync('/usr/bin/nsroute')).toBe('/usr/lib/nsroute/nsroute.js');
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(execFileSync('nsroute', ['--version'], { encoding: 'utf8' }).trim()).toBe(version);
  });

  it('starts from the code caches its postinst made for the Node installed here', () => {
    const r = spawnSync('nsroute', ['--help'], { encoding: 'utf8', env: { ...process.env, NSROUTE_TRACE_LOAD: '1' } });
    expect(r.status, r.stderr).toBe(0);
    const caches = [...r.stderr.matchAll(/^nsroute: load \S+ cache=(\S+) /gm)].map((m) => m[1]);
    expect(caches.length, r.stderr).toBeGreaterThan(0);
    expect(caches.filter((c) => c !== 'used'), r.stderr).toEqual([]);
  });

  it('has its man page where man finds it', () => {
    expect(execFileSync('man', ['-w', 'nsroute'], { encoding: 'utf8' }).trim()).toBe('/usr/share/man/man1/nsroute.1.gz');
  });

  it('completes from the installed bash script', () => {
    const r = spawnSync('bash', ['--norc', '-c', 'source /usr/share/bash-completion/completions/nsroute; COMP_WORDS=(nsroute ex); COMP_CWORD=1; _nsroute; echo "${COMPREPLY[*]}"'], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('exec');
  });

  it('runs a command in a namespace via the slow uplink, and leaves the fake host as it was', async () => {
    const r = await w.nsroute(['exec', w.name('pkg'), '--via', SLOW_GW, '--dns', DNS_SERVER, '--as-root', '--', ...PATH4]);
    expectOk(r);
    expect(r.stdout, show(r)).toMatch(/^slow /);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe.skipIf(installed)('the installed package', () => {
  it('is tested by .ci/run after installing it (NSROUTE_TEST_INSTALLED=1)', () => undefined);
});
