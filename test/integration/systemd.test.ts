// Persistent namespaces at boot and services inside them: the units nsroute writes pass
// `systemd-analyze verify`; enable/disable and attach/detach leave the unit directory exactly
// as it was; the unit's ExecStart/ExecStop, run by hand in the test world, bring NAME up and
// down; `nsroute watch` puts back a deleted route, rule and nft table, and the route after the
// uplink went down and up. systemd itself is not running here: NSROUTE_UNIT_DIR points at a
// directory of the world, and nsroute says what it would run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderDropIn } from '../../src/systemd/render.js';
import { HOST_SLOW_ADDR, REPO_ROOT, SLOW_GW, DNS_SERVER, waitFor, type RunResult, type Snapshot, type World } from '../world/world.js';
import { expectOk, expectUserError, PATH4, show, statusJson, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const SLOW = `slow ${HOST_SLOW_ADDR}`;

function unitDir(tag: string): string {
  const dir = join(w.dir, `units-${tag}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function nsr(dir: string, args: string[]): Promise<RunResult> {
  return w.nsroute(args, { env: { NSROUTE_UNIT_DIR: dir } });
}

// Every file under dir with its content (directories as entries too): "exactly as before".
function tree(dir: string, base = dir): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    const rel = p.slice(base.length + 1);
    if (statSync(p).isDirectory()) Object.assign(out, { [`${rel}/`]: '' }, tree(p, base));
    else out[rel] = readFileSync(p, 'utf8');
  }
  return out;
}

// SYSTEMD_UNIT_PATH with a trailing ':' adds systemd's own directories (network-online.target).
function verify(dir: string, unit: string): RunResult & { code: number } {
  const r = spawnSync('systemd-analyze', ['verify', join(dir, unit)], { env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` }, encoding: 'utf8' });
  return { exitCode: r.status, signal: null, stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 };
}

// Children of a process (the watcher's `ip monitor` and `nft monitor`).
function childrenOf(pid: number): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
    } catch {
      /* gone */
    }
  }
  return out;
}

const FAKE_SERVICE = '[Unit]\nDescription=a service to run inside a namespace\n[Service]\nExecStart=/bin/sleep infinity\n';

describe('units nsroute writes', () => {
  it('pass systemd-analyze verify: the namespace unit, and a service with the drop-in', async () => {
    const n = w.name('u1');
    const dir = unitDir('u1');
    w.writeProfile(n, `via = "${SLOW_GW}"\n`);
    writeFileSync(join(dir, 'torrent.service'), FAKE_SERVICE);
    const en = await nsr(dir, ['enable', n, '--json']);
    expectOk(en);
    expect(JSON.parse(en.stdout)).toMatchObject({ name: n, unit: `nsroute-${n}.service`, changed: true, ran: false, systemctl: ['systemctl daemon-reload', `systemctl enable nsroute-${n}.service`] });
    const text = await nsr(dir, ['enable', n]);
    expect(text.stderr).toMatch(/NSROUTE_UNIT_DIR is set, so nothing was started; to apply it run: systemctl daemon-reload && systemctl enable nsroute-/);
    expectOk(await nsr(dir, ['attach', n, 'torrent']));

    const unit = readFileSync(join(dir, `nsroute-${n}.service`), 'utf8');
    expect(unit).toContain(`ExecStart=${process.execPath} ${join(REPO_ROOT, 'dist', 'nsroute.js')} up ${n} --require-profile\n`);
    expect(unit).toContain(`ExecStop=${process.execPath} ${join(REPO_ROOT, 'dist', 'nsroute.js')} down ${n} --force\n`);
    expect(unit).toMatch(/Type=oneshot\nRemainAfterExit=yes\n/);
    expect(unit).toMatch(/After=network-online\.target/);
    const dropIn = readFileSync(join(dir, 'torrent.service.d', `nsroute-${n}.conf`), 'utf8');
    expect(dropIn).toContain(`NetworkNamespacePath=/run/netns/${n}\n`);
    expect(dropIn).toContain(`BindReadOnlyPaths=/etc/netns/${n}/resolv.conf:/etc/resolv.conf\n`);
    expect(dropIn).toContain(`BindsTo=nsroute-${n}.service\nAfter=nsroute-${n}.service\n`);

    for (const u of [`nsroute-${n}.service`, 'torrent.service']) {
      const r = verify(dir, u);
      expect(r.code, `${u}\n${show(r)}`).toBe(0);
      expect(r.stderr, u).toBe('');
    }
  });

  it('the drop-in for a systemd-resolved host (stub symlink) passes verify too', () => {
    const dir = unitDir('u2');
    writeFileSync(join(dir, 'nsroute-u2.service'), '[Unit]\nDescription=x\n[Service]\nType=oneshot\nExecStart=/bin/true\n');
    writeFileSync(join(dir, 'torrent.service'), FAKE_SERVICE);
    mkdirSync(join(dir, 'torrent.service.d'));
    const text = renderDropIn(readFileSync(join(REPO_ROOT, 'templates', 'attach.conf.in'), 'utf8'), {
      name: 'u2',
      unit: 'torrent.service',
      resolvConfTarget: '/run/systemd/resolve/stub-resolv.conf',
    });
    expect(text).toContain('TemporaryFileSystem=/run/systemd/resolve:ro\nBindReadOnlyPaths=/etc/netns/u2/resolv.conf:/run/systemd/resolve/stub-resolv.conf\n');
    writeFileSync(join(dir, 'torrent.service.d', 'nsroute-u2.conf'), text);
    const r = verify(dir, 'torrent.service');
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('the check can fail: a broken drop-in does not verify cleanly', () => {
    const dir = unitDir('u3');
    writeFileSync(join(dir, 'torrent.service'), FAKE_SERVICE);
    mkdirSync(join(dir, 'torrent.service.d'));
    writeFileSync(join(dir, 'torrent.service.d', 'broken.conf'), '[Service]\nNetworkNamespacePath=relative/path\nBindReadOnlyPaths=\n');
    const r = verify(dir, 'torrent.service');
    expect(r.code !== 0 || r.stderr !== '', show(r)).toBe(true);
  });
});

describe('enable/disable and attach/detach', () => {
  it('leave the unit directory exactly as before, other files untouched', async () => {
    const n = w.name('e1');
    const dir = unitDir('e1');
    w.writeProfile(n, '');
    writeFileSync(join(dir, 'torrent.service'), FAKE_SERVICE);
    mkdirSync(join(dir, 'torrent.service.d'));
    writeFileSync(join(dir, 'torrent.service.d', 'limits.conf'), '[Service]\nMemoryMax=1G\n');
    writeFileSync(join(dir, 'backup.service'), FAKE_SERVICE);
    const before = tree(dir);

    expectOk(await nsr(dir, ['enable', n]));
    expectOk(await nsr(dir, ['attach', n, 'torrent.service']));
    expectOk(await nsr(dir, ['attach', n, 'backup']));
    // Enabling and attaching again changes nothing.
    const during = tree(dir);
    expect(JSON.parse((await nsr(dir, ['enable', n, '--json'])).stdout).changed).toBe(false);
    expect(JSON.parse((await nsr(dir, ['attach', n, 'backup', '--json'])).stdout).changed).toBe(false);
    expect(tree(dir)).toEqual(during);

    expectOk(await nsr(dir, ['detach', n, 'torrent']));
    expectOk(await nsr(dir, ['detach', n, 'backup.service']));
    expectOk(await nsr(dir, ['disable', n]));
    expect(tree(dir)).toEqual(before);
    // Twice is fine.
    const again = await nsr(dir, ['disable', n, '--json']);
    expectOk(again);
    expect(JSON.parse(again.stdout)).toMatchObject({ changed: false });
    expect(tree(dir)).toEqual(before);
  });

  it('refuses what would break a unit, with the fix, changing nothing', async () => {
    const n = w.name('e2');
    const other = w.name('e3');
    const dir = unitDir('e2');
    writeFileSync(join(dir, 'torrent.service'), FAKE_SERVICE);
    const empty = tree(dir);
    expectUserError(await nsr(dir, ['enable', n]), 2); // no profile yet
    expectUserError(await nsr(dir, ['attach', n, 'torrent']), 2); // not enabled
    expect(tree(dir)).toEqual(empty);

    w.writeProfile(n, '');
    w.writeProfile(other, '');
    expectOk(await nsr(dir, ['enable', n]));
    expectOk(await nsr(dir, ['enable', other]));
    expectOk(await nsr(dir, ['attach', n, 'torrent']));
    const set = tree(dir);
    const twice = await nsr(dir, ['attach', other, 'torrent']);
    expectUserError(twice, 2);
    expect(twice.stderr).toContain(`torrent.service is attached to ${n}`);
    const busy = await nsr(dir, ['disable', n]);
    expectUserError(busy, 2);
    expect(busy.stderr).toContain(`nsroute detach ${n} torrent.service`);
    expectUserError(await nsr(dir, ['attach', n, 'not a unit!']), 2);
    expect(tree(dir)).toEqual(set);

    // A unit file nsroute did not write is never overwritten or removed.
    const foreign = w.name('e4');
    w.writeProfile(foreign, '');
    writeFileSync(join(dir, `nsroute-${foreign}.service`), '[Unit]\nDescription=mine\n');
    expectUserError(await nsr(dir, ['enable', foreign]), 2);
    expectUserError(await nsr(dir, ['disable', foreign]), 2);
    expect(readFileSync(join(dir, `nsroute-${foreign}.service`), 'utf8')).toBe('[Unit]\nDescription=mine\n');

    expectOk(await nsr(dir, ['detach', n, 'torrent']));
    expectOk(await nsr(dir, ['disable', n]));
    expectOk(await nsr(dir, ['disable', other]));
    expect(existsSync(join(dir, 'torrent.service.d'))).toBe(false);
  });
});

// The unit's command lines, as systemd would run them.
function execLine(unit: string, key: 'ExecStart' | 'ExecStop'): string[] {
  const line = unit.split('\n').find((l) => l.startsWith(`${key}=`));
  if (!line) throw new Error(`no ${key} in unit`);
  return line.slice(key.length + 1).split(' ');
}

function unitEnv(unit: string): Record<string, string> {
  return Object.fromEntries(
    unit
      .split('\n')
      .filter((l) => l.startsWith('Environment='))
      .map((l) => {
        const kv = l.slice('Environment='.length);
        return [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)];
      }),
  );
}

describe("the unit's ExecStart and ExecStop, run by hand", () => {
  it('bring NAME up from its profile (traffic via its gateway, watcher running) and down (host identical)', async () => {
    const n = w.name('x1');
    const dir = unitDir('x1');
    w.writeProfile(n, `via = "${SLOW_GW}"\ndns = ["${DNS_SERVER}"]\n`);
    expectOk(await nsr(dir, ['enable', n]));
    const unit = readFileSync(join(dir, `nsroute-${n}.service`), 'utf8');
    const env = unitEnv(unit);
    // The unit carries the settings the enabling command ran with (here: the world's dirs).
    expect(env.NSROUTE_RUN_DIR).toBe(w.runDir);
    expect(env.NSROUTE_CONFIG_DIR).toBe(w.configDir);

    expectOk(await w.inHost(execLine(unit, 'ExecStart'), { env }));
    const st = await statusJson(w, n);
    expect(st).toMatchObject({ up: true, persistent: true, gateway: SLOW_GW });
    const r = await w.nsroute(['exec', n, '--', ...PATH4]);
    expect(r.stdout.trim(), show(r)).toBe(SLOW);
    // The host watcher runs (its record is in its lock file).
    const watcher = (await waitFor(() => (JSON.parse(readFileSync(join(w.runDir, 'watch.lock'), 'utf8') || 'null') as { pid?: number } | null)?.pid, 'the watcher to run'))!;

    expectOk(await w.inHost(execLine(unit, 'ExecStop'), { env }));
    expect(w.netnsExists(n)).toBe(false);
    await waitFor(() => {
      try {
        process.kill(watcher, 0);
        return false;
      } catch {
        return true;
      }
    }, 'the watcher to end with the namespace');
    expect(await w.snapshot()).toEqual(clean);
    expectOk(await nsr(dir, ['disable', n]));
  });
});

// Issue 10 (fail-open sibling of finding 6): a profile gone at boot (removed, or its
// filesystem not mounted yet) used to bring NAME up on the host's own routes, and the services
// attached to it started into that. The unit's ExecStart now fails instead, changing nothing.
describe("the unit's ExecStart without the profile", () => {
  it('fails with one line, NAME stays down, host unchanged', async () => {
    const n = w.name('x2');
    const dir = unitDir('x2');
    const file = w.writeProfile(n, `via = "${SLOW_GW}"\n`);
    expectOk(await nsr(dir, ['enable', n]));
    const unit = readFileSync(join(dir, `nsroute-${n}.service`), 'utf8');
    rmSync(file);
    try {
      const r = await w.inHost(execLine(unit, 'ExecStart'), { env: unitEnv(unit) });
      expectUserError(r, 2);
      expect(r.stderr, show(r)).toContain(file);
    } finally {
      if (w.netnsExists(n)) await w.nsroute(['down', n]);
      expectOk(await nsr(dir, ['disable', n]));
    }
    expect(w.netnsExists(n)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('nsroute watch', () => {
  it('puts back a deleted route, rule and nft table, the route after the uplink goes down and up, and after a new address', async () => {
    const n = w.name('wt');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', DNS_SERVER, '--no-watch']));
    const table = String((await statusJson(w, n)).table);
    const watch = w.spawnNsroute(['watch', n, '--json'], { timeoutMs: 120_000 });
    try {
      // Subscribed once both monitors run (and a moment for them to open their sockets).
      await waitFor(() => ['ip', 'nft'].every((c) => childrenOf(watch.pid).includes(c)), 'the watcher\'s monitors to start');
      await new Promise((r) => setTimeout(r, 300));
      const routeBack = () => waitFor(async () => (await w.inHost(['ip', 'route', 'show', 'table', table])).stdout.includes(`via ${SLOW_GW}`), 'the uplink route back', 5000);
      const ruleBack = () => waitFor(async () => (await w.inHost(['ip', 'rule', 'show'])).stdout.includes(`lookup ${table}`), 'the rule back', 5000);
      const nftBack = () => waitFor(async () => (await w.inHost(['nft', 'list', 'table', 'inet', 'nsroute'])).exitCode === 0, 'the nft table back', 5000);

      expectOk(await w.inHost(['ip', 'route', 'del', 'default', 'via', SLOW_GW, 'table', table]));
      await routeBack();
      expectOk(await w.inHost(['sh', '-c', `ip rule del pref 4200 lookup ${table}`]));
      await ruleBack();
      expectOk(await w.inHost(['nft', 'delete', 'table', 'inet', 'nsroute']));
      await nftBack();
      await w.setUplink('slow', false);
      expect((await w.inHost(['ip', 'route', 'show', 'table', table])).stdout).not.toContain(`via ${SLOW_GW}`);
      await w.setUplink('slow', true);
      await routeBack();

      const r = await w.nsroute(['exec', n, '--', ...PATH4]);
      expect(r.stdout.trim(), show(r)).toBe(SLOW);

      // A new address by DHCP: the old one goes (and the kernel drops the routes through it),
      // the new one comes; the far side then sees the new address.
      const moved = `${SLOW_GW.split('.').slice(0, 3).join('.')}.77`;
      expectOk(await w.inHost(['ip', 'addr', 'del', `${HOST_SLOW_ADDR}/24`, 'dev', 'ups']));
      expectOk(await w.inHost(['ip', 'addr', 'add', `${moved}/24`, 'dev', 'ups']));
      await routeBack();
      const r2 = await w.nsroute(['exec', n, '--', ...PATH4]);
      expect(r2.stdout.trim(), show(r2)).toBe(`slow ${moved}`);
      expectOk(await w.inHost(['ip', 'addr', 'del', `${moved}/24`, 'dev', 'ups']));
      expectOk(await w.inHost(['ip', 'addr', 'add', `${HOST_SLOW_ADDR}/24`, 'dev', 'ups']));
      await routeBack();

      const repairs = watch
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { name: string; repaired: boolean });
      expect(repairs.length).toBeGreaterThanOrEqual(4);
      expect(repairs.every((x) => x.name === n && x.repaired)).toBe(true);
    } finally {
      watch.kill('SIGTERM');
    }
    const end = await watch.result;
    expect(end.exitCode, show(end)).toBe(0);
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });

  // The watcher looks (is anything broken?) before it takes the lock. The nft table deleted
  // while it looks, after its check found the table there, must be repaired all the same: the
  // watcher is held right after its look (NSROUTE_TEST_PAUSE=watch:0) while the table goes.
  it('puts back the nft table deleted while it was looking at an earlier event', async () => {
    const n = w.name('wl');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', DNS_SERVER, '--no-watch']));
    const pause = join(w.dir, `pause-${n}`);
    const watch = w.spawnNsroute(['watch', n, '--json'], { env: { NSROUTE_TEST_PAUSE: `watch:0:${pause}` }, timeoutMs: 120_000 });
    try {
      // The watcher's first look at everything (half a second after it starts) stops there.
      await waitFor(() => existsSync(`${pause}.reached`), 'the watcher to stop after its first look');
      expectOk(await w.inHost(['nft', 'delete', 'table', 'inet', 'nsroute']));
      // Time for `nft monitor` to tell the held watcher; it is then let go.
      await new Promise((r) => setTimeout(r, 1500));
      writeFileSync(pause, '');
      await waitFor(async () => (await w.inHost(['nft', 'list', 'table', 'inet', 'nsroute'])).exitCode === 0, 'the nft table back', 10_000);
      const r = await w.nsroute(['exec', n, '--', ...PATH4]);
      expect(r.stdout.trim(), show(r)).toBe(SLOW);
    } finally {
      writeFileSync(pause, '');
      watch.kill('SIGTERM');
    }
    const end = await watch.result;
    expect(end.exitCode, show(end)).toBe(0);
    expectOk(await w.nsroute(['down', n]));
    expect(await w.snapshot()).toEqual(clean);
  });
});
