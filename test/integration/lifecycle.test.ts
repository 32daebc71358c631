// Lifecycle: ephemeral namespaces shared by concurrent execs, torn down by the last one;
// up/down; down refusing while commands run; never touching a netns nsroute did not create.
import { existsSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, DNS_SERVER, HOST_SLOW_ADDR, SLOW_DEV, SLOW_GW, sleep, type World } from '../world/world.js';
import {
  expectOk,
  expectUserError,
  holdScript,
  marker,
  PATH4,
  show,
  statusJson,
  waitForFile,
  type StatusJson,
} from '../world/helpers.js';

let w: World;
beforeAll(async () => {
  w = await createWorld();
});
afterAll(async () => {
  await w?.destroy();
});

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

function expectStatusShape(s: StatusJson): void {
  expect(Object.keys(s)).toEqual(
    expect.arrayContaining([
      'name',
      'up',
      'persistent',
      'mode',
      'holders',
      'hostInterface',
      'namespaceInterface',
      'subnet',
      'hostAddress',
      'namespaceAddress',
      'gateway',
      'dev',
      'table',
      'dns',
      'createdAt',
    ]),
  );
  expect(s.up).toBe(true);
  expect(s.mode).toBe('nat');
  expect(typeof s.persistent).toBe('boolean');
  expect(s.namespaceInterface).toBe('eth0');
  expect(s.hostInterface.length).toBeLessThanOrEqual(15);
  expect(s.subnet).toMatch(/^10\.231\.\d+\.\d+\/(30|31)$/);
  expect(s.createdAt).toMatch(ISO);
  expect(Array.isArray(s.dns)).toBe(true);
  for (const h of s.holders) {
    expect(h).toMatchObject({
      pid: expect.any(Number),
      startTime: expect.any(Number),
      command: expect.any(Array),
      user: expect.any(String),
      since: expect.stringMatching(ISO),
    });
  }
}

describe('ephemeral lifecycle', () => {
  it('concurrent execs share one namespace; the last one out tears it down', async () => {
    const n = w.name('l1');
    const [r1, s1, r2, s2] = ['r1', 's1', 'r2', 's2'].map((m) => marker(w, `l1-${m}`)) as [string, string, string, string];
    const long = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--dns', DNS_SERVER, '--', ...holdScript(r1, s1, 0)]);
    try {
      await waitForFile(r1);
      const second = w.spawnNsroute(['exec', n, '--', ...holdScript(r2, s2, 5)]);
      await waitForFile(r2);

      const st = await statusJson(w, n);
      expectStatusShape(st);
      expect(st).toMatchObject({
        name: n,
        persistent: false,
        hostInterface: `nsr-${n}`,
        gateway: SLOW_GW,
        dev: SLOW_DEV,
        dns: [DNS_SERVER],
      });
      expect(st.table).toBeGreaterThanOrEqual(7101);
      expect(st.holders).toHaveLength(2);
      expect(st.holders.map((h) => h.command)).toEqual(
        expect.arrayContaining([holdScript(r1, s1, 0), holdScript(r2, s2, 5)]),
      );
      expect(st.holders.every((h) => h.user === 'root')).toBe(true);

      const list = await w.nsroute(['list', '--json']);
      expectOk(list);
      const arr = JSON.parse(list.stdout) as StatusJson[];
      expect(Array.isArray(arr)).toBe(true);
      expect(arr.find((x) => x.name === n)).toEqual(st);

      // A third, short exec comes and goes; it uses the namespace as it is.
      const third = await w.nsroute(['exec', n, '--', ...PATH4]);
      expectOk(third);
      expect(third.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);

      writeFileSync(s2, '');
      const r = await second.result;
      expect(r.exitCode, show(r)).toBe(5);
      expect(w.netnsExists(n)).toBe(true);
      const after = await statusJson(w, n);
      expect(after.holders).toHaveLength(1);
      expect(after.holders[0]!.command).toEqual(holdScript(r1, s1, 0));

      writeFileSync(s1, '');
      const l = await long.result;
      expectOk(l);
      expect(w.netnsExists(n)).toBe(false);
      expect(existsSync(`/etc/netns/${n}`)).toBe(false);
      const gone = await w.nsroute(['status', n, '--json']);
      expect(gone.exitCode, show(gone)).toBe(3);
      expect(JSON.parse(gone.stdout)).toEqual({ name: n, up: false });
      const list2 = await w.nsroute(['list', '--json']);
      expectOk(list2);
      expect((JSON.parse(list2.stdout) as StatusJson[]).map((x) => x.name)).not.toContain(n);
    } finally {
      long.kill('SIGKILL');
    }
  });

  it('execs started at the same moment both succeed and share the namespace', async () => {
    const n = w.name('l2');
    const ms = ['a-r', 'a-s', 'b-r', 'b-s'].map((m) => marker(w, `l2-${m}`)) as [string, string, string, string];
    const a = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...holdScript(ms[0], ms[1])]);
    const b = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...holdScript(ms[2], ms[3])]);
    try {
      await Promise.all([waitForFile(ms[0]), waitForFile(ms[2])]);
      const st = await statusJson(w, n);
      expect(st.holders).toHaveLength(2);
      writeFileSync(ms[1], '');
      writeFileSync(ms[3], '');
      const [ra, rb] = await Promise.all([a.result, b.result]);
      expectOk(ra);
      expectOk(rb);
      expect(w.netnsExists(n)).toBe(false);
    } finally {
      a.kill('SIGKILL');
      b.kill('SIGKILL');
    }
  });

  it('a long NAME gets a hashed host interface of at most 15 characters, distinct for similar names', async () => {
    const a = w.name('a-rather-long-name-1');
    const b = w.name('a-rather-long-name-2');
    expectOk(await w.nsroute(['up', a]));
    try {
      expectOk(await w.nsroute(['up', b]));
      try {
        const [sa, sb] = [await statusJson(w, a), await statusJson(w, b)];
        for (const s of [sa, sb]) expect(s.hostInterface).toMatch(/^nsr\.[a-z2-7]{11}$/); // 55 bits of sha256 (names.ts)
        expect(sa.hostInterface).not.toBe(sb.hostInterface);
        expect(sa.subnet).not.toBe(sb.subnet);
      } finally {
        expectOk(await w.nsroute(['down', b]));
      }
    } finally {
      expectOk(await w.nsroute(['down', a]));
    }
  });
});

describe('up and down', () => {
  it('up keeps the namespace after execs; down removes it; a second down is a no-op', async () => {
    const n = w.name('u1');
    const up = await w.nsroute(['up', n, '--via', SLOW_GW]);
    expectOk(up);
    try {
      expect(w.netnsExists(n)).toBe(true);
      const st = await statusJson(w, n);
      expect(st).toMatchObject({ name: n, up: true, persistent: true, holders: [] });
      const r = await w.nsroute(['exec', n, '--', ...PATH4]);
      expectOk(r);
      expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
      expect(w.netnsExists(n)).toBe(true);
      expect((await statusJson(w, n)).persistent).toBe(true);
      // up again on a namespace that is up: fine, still there.
      expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    } finally {
      const down = await w.nsroute(['down', n]);
      expectOk(down);
    }
    expect(w.netnsExists(n)).toBe(false);
    expect(existsSync(`/etc/netns/${n}`)).toBe(false);
    const again = await w.nsroute(['down', n]);
    expect(again.exitCode, show(again)).toBe(0);
    expect(again.stderr.trim(), show(again)).not.toBe('');
  });

  it('down refuses while a command runs inside; down --force ends it and tears down', async () => {
    const n = w.name('u2');
    const [ready, stop] = [marker(w, 'u2-ready'), marker(w, 'u2-stop')];
    expectOk(await w.nsroute(['up', n]));
    const inside = w.spawnNsroute(['exec', n, '--', ...holdScript(ready, stop)]);
    try {
      await waitForFile(ready);
      const refused = await w.nsroute(['down', n]);
      expectUserError(refused, 2);
      expect(w.netnsExists(n)).toBe(true);
      await sleep(200);
      expect(inside.child.exitCode).toBeNull();
      expect((await statusJson(w, n)).holders).toHaveLength(1);

      const forced = await w.nsroute(['down', n, '--force']);
      expectOk(forced);
      expect(w.netnsExists(n)).toBe(false);
      const r = await Promise.race([inside.result, sleep(10_000).then(() => null)]);
      expect(r, 'the command inside was not ended by down --force').not.toBeNull();
      expect(r!.exitCode, show(r!)).not.toBe(0);
      expect(existsSync(stop)).toBe(false);
    } finally {
      inside.kill('SIGKILL');
    }
  });

  it('down refuses for an ephemeral namespace in use too', async () => {
    const n = w.name('u3');
    const [ready, stop] = [marker(w, 'u3-ready'), marker(w, 'u3-stop')];
    const inside = w.spawnNsroute(['exec', n, '--', ...holdScript(ready, stop)]);
    try {
      await waitForFile(ready);
      expectUserError(await w.nsroute(['down', n]), 2);
      expect(w.netnsExists(n)).toBe(true);
      writeFileSync(stop, '');
      expectOk(await inside.result);
      expect(w.netnsExists(n)).toBe(false);
    } finally {
      inside.kill('SIGKILL');
    }
  });

  it('a netns NAME that nsroute did not create is never touched', async () => {
    const n = w.name('foreign');
    expectOk(await w.inHost(['ip', 'netns', 'add', n]));
    try {
      expectOk(await w.inNetns(n, ['ip', 'link', 'set', 'lo', 'up']));
      const before = (await w.inNetns(n, ['ip', '-j', 'addr'])).stdout;
      const snap = await w.snapshot();

      expectUserError(await w.nsroute(['up', n]), 2);
      expectUserError(await w.nsroute(['exec', n, '--', 'true']), 125);
      expectUserError(await w.nsroute(['down', n]), 2);
      expectUserError(await w.nsroute(['down', n, '--force']), 2);

      expect(w.netnsExists(n)).toBe(true);
      expect((await w.inNetns(n, ['ip', '-j', 'addr'])).stdout).toBe(before);
      expect(existsSync(`/etc/netns/${n}`)).toBe(false);
      expect(await w.snapshot()).toEqual(snap);
    } finally {
      await w.inHost(['ip', 'netns', 'del', n]);
    }
  });
});
