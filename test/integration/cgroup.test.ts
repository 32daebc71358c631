// cgroup mode (issue 12): programs routed by their cgroup, without a namespace. They stay in
// the fake host's network (nsroute runs there via `nsenter --net`, which keeps the host's
// mounts and cgroup filesystem): a member's sockets are made in the fake host and matched
// there. Every cgroup lives under the world's own parent (NSROUTE_CGROUP_PARENT), removed
// after the file, also when it fails.
import { existsSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { HOST_FAST_ADDR, HOST_SLOW_ADDR, SLOW_ANSWER, SLOW_DEV, SLOW_GW, STUB_ADDR, type Snapshot, type World } from '../world/world.js';
import { expectOk, expectUserError, PATH4, PATH6, probeName, show, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snap) => ((w = world), (clean = snap)), { rpFilter: true, resolvedStub: true });

// The cgroup v2 mount (hybrid here: /sys/fs/cgroup/unified).
function cgMount(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n') as string[]) {
    const dash = line.indexOf(' - ');
    if (dash > 0 && line.slice(dash + 3).startsWith('cgroup2 ')) return line.split(' ')[4]!;
  }
  throw new Error('no cgroup2 mount');
}
const parent = () => `${w.prefix}cg`;
const env = () => ({ NSROUTE_CGROUP_PARENT: parent() });
const ns = (args: string[], opts: { env?: Record<string, string> } = {}) => w.nsroute(args, { env: { ...env(), ...opts.env } });

// Every cgroup directory of this world (what a snapshot compares).
function cgroupDirs(): string[] {
  const root = join(cgMount(), parent());
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((f) => statSync(join(root, f)).isDirectory());
}

afterAll(() => {
  const root = join(cgMount(), parent());
  if (!existsSync(root)) return;
  for (const d of readdirSync(root)) {
    const p = join(root, d);
    if (statSync(p).isDirectory()) rmdirSync(p);
  }
  rmdirSync(root);
});

describe('cgroup mode: exec', () => {
  it('--via SLOW goes slow, without nsroute fast, and the host stays fast meanwhile', async () => {
    const n = w.name('c1');
    const r = await ns(['exec', n, '--mode', 'cgroup', '--via', SLOW_GW, '--', ...PATH4]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
    expect(await w.hostPath(4)).toBe(`fast ${HOST_FAST_ADDR}`);
    expect(cgroupDirs()).toEqual([]);
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a member reaches a server on the fake host\'s 127.0.0.1 (what a namespace cannot)', async () => {
    const n = w.name('c2');
    const server = w.inHost(['socat', '-T10', 'TCP4-LISTEN:7555,bind=127.0.0.1,reuseaddr', 'SYSTEM:echo local']);
    const r = await ns(['exec', n, '--mode', 'cgroup', '--via', SLOW_GW, '--', 'sh', '-c', 'for i in $(seq 50); do socat -T5 - TCP4:127.0.0.1:7555 </dev/null && exit 0; sleep 0.2; done; exit 1']);
    expectOk(r);
    expect(r.stdout.trim()).toBe('local');
    await server;
  });

  it("DNS goes only to NAME's server by the uplink, also when the member asks the host's loopback stub", async () => {
    const n = w.name('c3');
    const direct = probeName('cgd');
    const viaStub = probeName('cgs');
    const stubConf = join(w.dir, 'stub-resolv.conf');
    writeFileSync(stubConf, `nameserver ${STUB_ADDR}\n`);
    // The second lookup puts a resolv.conf naming the stub back over NAME's (the member is root
    // in its own mount namespace): the query to 127.0.0.53 must still reach only NAME's server.
    const r = await ns(['exec', n, '--mode', 'cgroup', '--via', SLOW_GW, '--dns', SLOW_GW, '--', 'sh', '-c', `getent ahostsv4 ${direct}; mount --bind ${stubConf} /etc/resolv.conf && getent ahostsv4 ${viaStub}`]);
    expectOk(r);
    expect(r.stdout).toContain(SLOW_ANSWER);
    expect(await w.waitDnsQueries('slow', direct)).toBeGreaterThan(0);
    expect(await w.waitDnsQueries('slow', viaStub)).toBeGreaterThan(0);
    for (const name of [direct, viaStub]) {
      expect(w.dnsQueries('fast', name)).toBe(0);
      expect(w.dnsQueries('stub', name)).toBe(0);
    }
  });

  it('IPv6 off: a member\'s IPv6 connection fails at once', async () => {
    const r = await ns(['exec', w.name('c4'), '--mode', 'cgroup', '--via', SLOW_GW, '--', ...PATH6]);
    expect(r.exitCode, show(r)).not.toBe(0);
    expect(r.stderr).toMatch(/Permission denied|refused|unreachable/i);
    expect(r.stderr).not.toMatch(/timed out/i);
  });

  it('kill switch: with the uplink down a member\'s traffic fails and never goes fast', async () => {
    const n = w.name('c5');
    expectOk(await ns(['up', n, '--mode', 'cgroup', '--via', SLOW_GW, '--dev', SLOW_DEV]));
    try {
      await w.setUplink('slow', false);
      const before = await w.gatewayPackets('fast');
      const r = await ns(['exec', n, '--', ...PATH4]);
      expect(r.exitCode, show(r)).not.toBe(0);
      expect((await w.gatewayPackets('fast')).path4).toBe(before.path4);
    } finally {
      await w.setUplink('slow', true);
      expectOk(await ns(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('refuses options of other modes, with the reason', async () => {
    for (const [args, what] of [
      [['--subnet', '10.231.0.0/30'], /subnet/],
      [['--uplink', 'upf'], /bridge or macvlan/],
      [['--address', '10.99.3.9/24'], /bridge or macvlan/],
    ] as const) {
      const r = await ns(['exec', w.name('c6'), '--mode', 'cgroup', '--via', SLOW_GW, ...args, '--', 'true']);
      expectUserError(r, 125);
      expect(r.stderr).toMatch(what);
    }
    const bad = await ns(['exec', w.name('c6'), '--mode', 'cgroup', '--', 'true'], { env: { NSROUTE_CGROUP_PARENT: '../x' } });
    expectUserError(bad, 125);
    expect(cgroupDirs()).toEqual([]);
    expect(await w.snapshot()).toEqual(clean);
  });
});

// cgroup-dir, netns-files, uplink-route, cgroup-localnet, cgroup-nft
const CG_STEPS = [0, 1, 2, 3, 4];

describe('cgroup mode: SIGKILL after each step, then gc', () => {
  const crashing = (name: string, crash: string) => ns(['exec', name, '--mode', 'cgroup', '--via', SLOW_GW, '--', ...PATH4], { env: { NSROUTE_TEST_CRASH: crash } });

  async function expectClean(name: string, what: string): Promise<void> {
    expect(await w.snapshot(), what).toEqual(clean);
    expect(cgroupDirs(), what).toEqual([]);
    expect(existsSync(`/etc/netns/${name}`), what).toBe(false);
  }

  it.each(CG_STEPS)('bringing up, after step %i: gc rolls back to exactly the clean host', async (k) => {
    const name = w.name(`ca${k}`);
    const r = await crashing(name, `apply:${k}`);
    expect(r.signal, show(r)).toBe('SIGKILL');
    const gc = await ns(['gc', '--json']);
    expectOk(gc);
    expect(JSON.parse(gc.stdout).rolledBack).toEqual([name]);
    await expectClean(name, `crash after step ${k}`);
  });

  it.each(CG_STEPS)('tearing down, after undoing step %i: gc finishes, exactly the clean host', async (k) => {
    const name = w.name(`cu${k}`);
    const r = await crashing(name, `undo:${k}`);
    expect(r.signal, show(r)).toBe('SIGKILL');
    expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
    const gc = await ns(['gc', '--json']);
    expectOk(gc);
    expect(JSON.parse(gc.stdout).finished).toEqual([name]);
    await expectClean(name, `crash after undoing step ${k}`);
  });

  it('past the last step nothing crashes', async () => {
    const r = await crashing(w.name('cend'), `apply:${CG_STEPS.length}`);
    expect(r.exitCode, show(r)).toBe(0);
    await expectClean(w.name('cend'), 'past the last step');
  });
});
