// State that outlives a reboot. /run is not a tmpfs on every machine, so the run dir can hold
// states of an earlier boot whose kernel objects died with the old kernel. nsroute must then
// remove only what really survived (files), and never "undo" kernel objects or sysctls of the
// new boot: a namespace of the same name or the admin's ip_forward may be someone else's now.
// A reboot is simulated by rewriting the boot id in the state files.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorld, SLOW_GW, type World } from '../world/world.js';
import { expectOk, PATH4, show } from '../world/helpers.js';

let w: World;
beforeAll(async () => {
  w = await createWorld();
});
afterAll(async () => {
  await w?.destroy();
});

function ageBootId(file: string): void {
  const json = JSON.parse(readFileSync(file, 'utf8'));
  json.bootId = 'an-earlier-boot';
  writeFileSync(file, JSON.stringify(json));
}

async function ipForward(): Promise<string> {
  return (await w.inHost(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim();
}

describe('state from an earlier boot', () => {
  it('is forgotten: files removed, kernel objects and this boot\'s sysctls left alone', async () => {
    const old = w.name('old');
    const fresh = w.name('new');
    expect(await ipForward()).toBe('0');
    expectOk(await w.nsroute(['up', old, '--via', SLOW_GW, '--dns', SLOW_GW]));
    expect(existsSync(`/etc/netns/${old}/resolv.conf`)).toBe(true);
    expect(await ipForward()).toBe('1');

    const hostIface = JSON.parse((await w.nsroute(['status', old, '--json'])).stdout).hostInterface as string;

    // "Reboot": the state and the saved sysctls now belong to an earlier boot. In a real
    // reboot the kernel objects are gone and a namespace called `old` may since have been
    // made by someone else: remove the owner-tagged veth, so what is left of `old` is an
    // untagged namespace, as someone else's would be.
    ageBootId(join(w.runDir, 'ns', old, 'state.json'));
    ageBootId(join(w.libDir, 'host.json'));
    expectOk(await w.inHost(['ip', 'link', 'del', 'dev', hostIface]));

    const st = await w.nsroute(['status', old, '--json']);
    expect(st.exitCode, show(st)).toBe(3);
    expect(JSON.parse(st.stdout)).toEqual({ name: old, up: false });

    const r = await w.nsroute(['exec', fresh, '--via', SLOW_GW, '--', ...PATH4]);
    expect(r.exitCode, show(r)).toBe(0);
    expect(r.stdout.trim()).toBe('slow 10.99.2.2');

    // Files of the earlier boot are gone, and so is its state.
    expect(existsSync(`/etc/netns/${old}`)).toBe(false);
    expect(existsSync(join(w.runDir, 'ns', old))).toBe(false);
    const list = await w.nsroute(['list', '--json']);
    expect(JSON.parse(list.stdout)).toEqual([]);
    // No kernel undo was attempted on it: the namespace (which nsroute no longer owns) is untouched.
    expect(w.netnsExists(old)).toBe(true);
    // ip_forward was 1 when this boot's first namespace came up, so it stays 1: the value
    // saved in the earlier boot (0) is not written back over this boot's setting.
    expect(await ipForward()).toBe('1');
    // And nsroute now refuses to touch the namespace it no longer owns.
    const again = await w.nsroute(['down', old]);
    expect(again.exitCode, show(again)).toBe(2);
    expect(again.stderr).toMatch(/not created by nsroute/);
  });

  it('clears a dead /run/netns placeholder of an earlier boot, so the name can be used again', async () => {
    const ghost = w.name('ghost');
    expectOk(await w.nsroute(['up', ghost]));
    expectOk(await w.nsroute(['down', ghost]));
    // Recreate the situation after a reboot with /run on disk: the state file says "up" (from an
    // earlier boot) and /run/netns/NAME is a plain file with no namespace mounted on it.
    const up = await w.nsroute(['up', ghost, '--json']);
    expectOk(up);
    ageBootId(join(w.runDir, 'ns', ghost, 'state.json'));
    expectOk(await w.inHost(['ip', 'link', 'del', 'dev', JSON.parse(up.stdout).hostInterface]));
    expectOk(await w.inHost(['umount', `/run/netns/${ghost}`]));
    expect(existsSync(`/run/netns/${ghost}`)).toBe(true);

    const r = await w.nsroute(['exec', ghost, '--', ...PATH4]);
    expect(r.exitCode, show(r)).toBe(0);
    expect(r.stdout.trim()).toBe('fast 10.99.1.2');
    expect(existsSync(`/run/netns/${ghost}`)).toBe(false);
  });
});
