// Teardown is exact: after down (or the last exec) the fake host's links, addresses, routes of
// all tables, rules, nft ruleset and sysctls are identical to before, and only the namespace
// being removed is affected.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DNS_SERVER,
  FAST_GW,
  HOST_FAST_ADDR,
  HOST_SLOW_ADDR,
  SLOW_GW,
  type Snapshot,
  type World,
} from '../world/world.js';
import { expectOk, holdScript, marker, PATH4, show, waitForFile, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

async function path(name: string): Promise<string> {
  const r = await w.nsroute(['exec', name, '--', ...PATH4]);
  expect(r.exitCode, show(r)).toBe(0);
  return r.stdout.trim();
}

function sysctl(s: Snapshot, key: string): string | undefined {
  return s.sysctl[key];
}

describe('teardown exactness', () => {
  it('up --via --dns, exec, down: the host is exactly as before', async () => {
    const n = w.name('x1');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', DNS_SERVER]));
    const during = await w.snapshot();
    try {
      // The snapshot does see what nsroute added.
      expect(during).not.toEqual(clean);
      expect(during.nft).toMatch(/table inet nsroute/);
      expect(sysctl(during, 'net.ipv4.ip_forward')).toBe('1');
      expect(await path(n)).toBe(`slow ${HOST_SLOW_ADDR}`);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
    expect(w.netnsExists(n)).toBe(false);
    expect(existsSync(`/etc/netns/${n}`)).toBe(false);
  });

  it('an ephemeral exec with --via --dns leaves the host exactly as before', async () => {
    const r = await w.nsroute(['exec', w.name('x2'), '--via', SLOW_GW, '--dns', DNS_SERVER, '--', ...PATH4]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('an ephemeral exec without options leaves the host exactly as before', async () => {
    expect(await path(w.name('x3'))).toBe(`fast ${HOST_FAST_ADDR}`);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('failing, missing and signalled commands leave the host exactly as before', async () => {
    const n = w.name('x4');
    expect((await w.nsroute(['exec', n, '--via', SLOW_GW, '--', 'sh', '-c', 'exit 3'])).exitCode).toBe(3);
    expect((await w.nsroute(['exec', n, '--via', SLOW_GW, '--', 'nsroute-test-no-such-command'])).exitCode).toBe(127);
    expect((await w.nsroute(['exec', n, '--via', SLOW_GW, '--', 'sh', '-c', 'kill -KILL $$'])).exitCode).toBe(137);
    const [ready, stop] = [marker(w, 'x4-ready'), marker(w, 'x4-stop')];
    const p = w.spawnNsroute(['exec', n, '--via', SLOW_GW, '--', ...holdScript(ready, stop)]);
    await waitForFile(ready);
    p.kill('SIGTERM');
    const r = await p.result;
    expect(r.exitCode, show(r)).toBe(143);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('down --force leaves the host exactly as before', async () => {
    const n = w.name('x5');
    const [ready, stop] = [marker(w, 'x5-ready'), marker(w, 'x5-stop')];
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', DNS_SERVER]));
    const p = w.spawnNsroute(['exec', n, '--', ...holdScript(ready, stop)]);
    try {
      await waitForFile(ready);
      expectOk(await w.nsroute(['down', n, '--force']));
      await p.result;
    } finally {
      p.kill('SIGKILL');
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  // Teardown deletes NAME's namespace before its veth, so that the kernel removes the pair by
  // itself (apply.ts, namespaceFirst). A namespace something keeps alive (here an open
  // descriptor of a process in the host, not inside) keeps its veth: nsroute deletes it then.
  // With an uplink (fail-closed rules cover NAME) and without one (nothing but the veth does).
  it.each([
    ['with --via', 'x6', ['--via', SLOW_GW, '--dns', DNS_SERVER]],
    ['without an uplink', 'x7', ['--dns', DNS_SERVER]],
  ])('a namespace still held open by a descriptor loses its veth at down all the same (%s)', async (_, suffix, route) => {
    const n = w.name(suffix);
    const ready = marker(w, `${suffix}-ready`);
    expectOk(await w.nsroute(['up', n, ...route]));
    const holder = w.spawnIn(w.host, ['sh', '-c', `exec 3</run/netns/${n}; touch '${ready}'; exec sleep 600`], { timeoutMs: 700_000 });
    try {
      await waitForFile(ready);
      expectOk(await w.nsroute(['down', n]));
      expect(w.netnsExists(n)).toBe(false);
      // The namespace lives on through the descriptor, with nothing but lo in it.
      const links = await w.inHost(['nsenter', `--net=/proc/${holder.pid}/fd/3`, 'ip', '-j', 'link', 'show']);
      expectOk(links);
      expect((JSON.parse(links.stdout) as { ifname: string }[]).map((l) => l.ifname), links.stdout).toEqual(['lo']);
      expect(await w.snapshot()).toEqual(clean);
    } finally {
      holder.kill('SIGKILL');
      await holder.result;
    }
  });

  it('two namespaces on different uplinks: tearing one down leaves the other working', async () => {
    const slowA = w.name('ya');
    const slowB = w.name('yb');
    const fast = w.name('yc');
    const all = [slowA, slowB, fast];
    try {
      expectOk(await w.nsroute(['up', slowA, '--via', SLOW_GW]));
      expectOk(await w.nsroute(['up', slowB, '--via', SLOW_GW]));
      expectOk(await w.nsroute(['up', fast, '--via', FAST_GW]));
      expect(await path(slowA)).toBe(`slow ${HOST_SLOW_ADDR}`);
      expect(await path(slowB)).toBe(`slow ${HOST_SLOW_ADDR}`);
      expect(await path(fast)).toBe(`fast ${HOST_FAST_ADDR}`);

      // slowA shares its uplink (table, rule) with slowB: slowB must keep working.
      expectOk(await w.nsroute(['down', slowA]));
      expect(await path(slowB)).toBe(`slow ${HOST_SLOW_ADDR}`);
      expect(await path(fast)).toBe(`fast ${HOST_FAST_ADDR}`);
      expect(await w.hostPath(4)).toBe(`fast ${HOST_FAST_ADDR}`);

      // fast goes; slowB still slow, and forwarding stays on while it exists.
      expectOk(await w.nsroute(['down', fast]));
      expect(await path(slowB)).toBe(`slow ${HOST_SLOW_ADDR}`);
      expect(sysctl(await w.snapshot(), 'net.ipv4.ip_forward')).toBe('1');

      // An ephemeral one on the other uplink comes and goes meanwhile.
      expect(await path(w.name('yd'))).toBe(`fast ${HOST_FAST_ADDR}`);
      expect(await path(slowB)).toBe(`slow ${HOST_SLOW_ADDR}`);

      expectOk(await w.nsroute(['down', slowB]));
    } finally {
      for (const n of all) await w.nsroute(['down', n, '--force']);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('restores values the host had: forwarding already on stays on', async () => {
    expectOk(await w.inHost(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']));
    try {
      const before = await w.snapshot();
      const n = w.name('x6');
      expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
      expectOk(await w.nsroute(['down', n]));
      const after = await w.snapshot();
      expect(sysctl(after, 'net.ipv4.ip_forward')).toBe('1');
      expect(after).toEqual(before);
    } finally {
      await w.inHost(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it("restores the user's own /etc/netns/NAME/resolv.conf", async () => {
    const n = w.name('x7');
    const dir = `/etc/netns/${n}`;
    const mine = '# my own\nnameserver 192.0.2.53\n';
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}/resolv.conf`, mine);
    expectOk(await w.nsroute(['up', n, '--dns', DNS_SERVER]));
    try {
      expect(readFileSync(`${dir}/resolv.conf`, 'utf8')).toContain(`nameserver ${DNS_SERVER}`);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(readFileSync(`${dir}/resolv.conf`, 'utf8')).toBe(mine);
    expect(existsSync(`${dir}/gai.conf`)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('keeps an empty /etc/netns/NAME the user made, and removes one that holds only files nsroute left', async () => {
    const empty = w.name('x8');
    mkdirSync(`/etc/netns/${empty}`);
    expectOk(await w.nsroute(['exec', empty, '--', 'true']));
    expect(existsSync(`/etc/netns/${empty}`)).toBe(true);

    // As after a reboot that cleared the run dir but not /etc: only nsroute's own files.
    const leftover = w.name('x9');
    mkdirSync(`/etc/netns/${leftover}`);
    writeFileSync(`/etc/netns/${leftover}/resolv.conf`, `# Written by nsroute for namespace ${leftover}\nnameserver 192.0.2.53\n`);
    expectOk(await w.nsroute(['exec', leftover, '--', 'true']));
    expect(existsSync(`/etc/netns/${leftover}`)).toBe(false);
    expect(await w.snapshot()).toEqual(clean);
  });
});
