// exec passes the command's outcome through (codes, signals, stdio) and runs it as the right user.
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, type World } from '../world/world.js';
import { expectOk, marker, readIfExists, show, waitForFile } from '../world/helpers.js';

let w: World;
beforeAll(async () => {
  w = await createWorld();
});
afterAll(async () => {
  await w?.destroy();
});

describe('exit codes', () => {
  it("passes the command's exit code through", async () => {
    const r = await w.nsroute(['exec', w.name('e1'), '--', 'sh', '-c', 'exit 7']);
    expect(r.exitCode, show(r)).toBe(7);
    expect(w.netnsExists(w.name('e1'))).toBe(false);
  });

  it('reports a command killed by SIGTERM as 143 and by SIGKILL as 137', async () => {
    const t = await w.nsroute(['exec', w.name('e2'), '--', 'sh', '-c', 'kill -TERM $$']);
    expect(t.exitCode, show(t)).toBe(143);
    const k = await w.nsroute(['exec', w.name('e2'), '--', 'sh', '-c', 'kill -KILL $$']);
    expect(k.exitCode, show(k)).toBe(137);
    expect(w.netnsExists(w.name('e2'))).toBe(false);
  });

  it('returns 127 for a command that does not exist', async () => {
    const r = await w.nsroute(['exec', w.name('e3'), '--', 'nsroute-test-no-such-command']);
    expect(r.exitCode, show(r)).toBe(127);
    expect(r.stderr).not.toBe('');
    expect(w.netnsExists(w.name('e3'))).toBe(false);
  });

  it('returns 126 for a command that cannot be run', async () => {
    const file = marker(w, 'not-executable.sh');
    writeFileSync(file, '#!/bin/sh\necho should not run\n');
    chmodSync(file, 0o644);
    const r = await w.nsroute(['exec', w.name('e4'), '--', file]);
    expect(r.exitCode, show(r)).toBe(126);
    expect(r.stdout).toBe('');
    expect(w.netnsExists(w.name('e4'))).toBe(false);
  });

  it('passes stdin, stdout, stderr and NSROUTE_NAMESPACE through', async () => {
    const n = w.name('e5');
    const r = await w.nsroute(['exec', n, '--', 'sh', '-c', 'cat; echo "ns=$NSROUTE_NAMESPACE"; echo oops >&2'], {
      input: 'hello from stdin\n',
    });
    expectOk(r);
    expect(r.stdout).toBe(`hello from stdin\nns=${n}\n`);
    expect(r.stderr).toBe('oops\n');
  });
});

describe('shell', () => {
  it("starts the user's login shell inside, reading stdin, and returns its exit code", async () => {
    const n = w.name('sh1');
    const r = await w.nsroute(['shell', n], { input: 'echo "ns=$NSROUTE_NAMESPACE uid=$(id -u)"\nexit 3\n' });
    expect(r.exitCode, show(r)).toBe(3);
    expect(r.stdout).toContain(`ns=${n} uid=0`);
    expect(w.netnsExists(n)).toBe(false);
  });
});

describe('signals sent to nsroute reach the command', () => {
  for (const [sig, code] of [
    ['SIGTERM', 41],
    ['SIGINT', 42],
    ['SIGHUP', 43],
  ] as const) {
    it(`${sig}: the command's trap runs, its exit code is returned, the namespace goes`, async () => {
      const n = w.name(`s${code}`);
      const ready = marker(w, `ready-${sig}`);
      const got = marker(w, `got-${sig}`);
      const short = sig.slice(3);
      const p = w.spawnNsroute([
        'exec',
        n,
        '--',
        'sh',
        '-c',
        `trap 'echo ${short} > "${got}"; exit ${code}' ${short}; touch "${ready}"; while :; do sleep 0.05; done`,
      ]);
      await waitForFile(ready);
      expect(w.netnsExists(n)).toBe(true);
      p.kill(sig);
      const r = await p.result;
      expect(r.exitCode, show(r)).toBe(code);
      expect(readIfExists(got)?.trim()).toBe(short);
      expect(w.netnsExists(n)).toBe(false);
      const st = await w.nsroute(['status', n]);
      expect(st.exitCode, show(st)).toBe(3);
    });
  }
});

describe('user switching', () => {
  const nobody = (() => {
    const pw = spawnSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).stdout.trim().split(':');
    const groups = spawnSync('id', ['-G', 'nobody'], { encoding: 'utf8' }).stdout.trim();
    return { uid: pw[2]!, gid: pw[3]!, home: pw[5]!, shell: pw[6]!, groups };
  })();
  const sudoEnv = { SUDO_UID: nobody.uid, SUDO_GID: nobody.gid, SUDO_USER: 'nobody' };
  const probe = ['sh', '-c', 'id -u; id -g; id -G; echo "$HOME|$USER|$LOGNAME|$SHELL"'];

  it('runs as the sudo user by default, with its groups and environment', async () => {
    const r = await w.nsroute(['exec', w.name('u1'), '--', ...probe], { env: sudoEnv, cwd: '/' });
    expectOk(r);
    expect(r.stdout.split('\n').slice(0, 4)).toEqual([
      nobody.uid,
      nobody.gid,
      nobody.groups,
      `${nobody.home}|nobody|nobody|${nobody.shell}`,
    ]);
  });

  it('--as-root runs as root even under sudo', async () => {
    const r = await w.nsroute(['exec', w.name('u2'), '--as-root', '--', 'id', '-u'], { env: sudoEnv, cwd: '/' });
    expectOk(r);
    expect(r.stdout.trim()).toBe('0');
  });

  it('--user picks the user without sudo variables', async () => {
    const r = await w.nsroute(['exec', w.name('u3'), '--user', 'nobody', '--', ...probe], { cwd: '/' });
    expectOk(r);
    const [uid, gid, groups] = r.stdout.split('\n');
    expect([uid, gid, groups]).toEqual([nobody.uid, nobody.gid, nobody.groups]);
  });

  it('runs as root when not under sudo', async () => {
    const r = await w.nsroute(['exec', w.name('u4'), '--', 'id', '-u'], { cwd: '/' });
    expectOk(r);
    expect(r.stdout.trim()).toBe('0');
  });
});
