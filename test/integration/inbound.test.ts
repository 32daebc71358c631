// Traffic in and traffic shaped (issue 13): published ports (`--publish`) and bandwidth caps
// (`--rate-down` / `--rate-up`) of nat namespaces, with a real kernel, nft, tc and servers.
// Clients stand in the gateways and bind the gateways' 198.18.0.10 (on their lo): an address
// the fake host reaches only by a route, so a reply that leaves by the wrong uplink never
// arrives (both gateways hold 198.18.0.10; neither forwards).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DNS_SERVER, FAST_DEV, HOST_FAST_ADDR, HOST_SLOW_ADDR, SLOW_DEV, SLOW_GW, waitFor, type Snapshot, type World } from '../world/world.js';
import { expectOk, expectUserError, show, statusJson, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const ROUTE = ['--via', SLOW_GW, '--dns', DNS_SERVER];
const CLIENT_ADDR = '198.18.0.10';

// A server inside a namespace on `port` answering "inner <client address>", in the background.
async function serveIn(netns: string, port: number): Promise<number> {
  const r = await w.inNetns(netns, ['sh', '-c', `socat -T10 TCP4-LISTEN:${port},fork,reuseaddr SYSTEM:'echo inner $SOCAT_PEERADDR' >/dev/null 2>&1 </dev/null & echo $!`]);
  expectOk(r);
  const pid = Number(r.stdout.trim());
  await waitFor(async () => (await w.inNetns(netns, ['ss', '-Hltn', `sport = :${port}`])).stdout.includes(`:${port}`), `server on :${port} in ${netns}`);
  return pid;
}

function stop(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

// A client in a gateway (from 198.18.0.10) or the fake host ('host', its own source).
async function connect(from: 'fast' | 'slow' | 'host', target: string): Promise<string> {
  const bind = from === 'host' ? '' : `,bind=${CLIENT_ADDR}`;
  const argv = ['socat', '-T5', '-t5', '-', `TCP4:${target}${bind},connect-timeout=3`];
  const r = from === 'host' ? await w.inHost(argv) : await w.inNetns(from === 'fast' ? `${w.prefix}gwf` : `${w.prefix}gws`, argv);
  return r.stdout.trim();
}

describe('published ports', () => {
  let name: string;
  let server: number;
  let withPub: Snapshot;

  beforeAll(async () => {
    // The gateways ask ARP from their link address, not from the 198.18.0.10 a client binds
    // (a strict-rp_filter host ignores ARP from a source it routes elsewhere). Gateways only.
    for (const gw of ['gwf', 'gws']) expectOk(await w.inNetns(`${w.prefix}${gw}`, ['sysctl', '-q', '-w', 'net.ipv4.conf.all.arp_announce=2', 'net.ipv4.conf.lan0.arp_announce=2']));
    name = w.name('pub');
    expectOk(await w.nsroute(['up', name, ...ROUTE, '--publish', '8080:80', '--publish', `${HOST_SLOW_ADDR}:8081:80`, '--publish', '5353:53/udp']));
    server = await serveIn(name, 80);
  });
  afterAll(async () => {
    stop(server);
    expectOk(await w.nsroute(['down', name, '--force']));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a connection to the slow address reaches the server inside, which sees the client; the reply goes back by slow', async () => {
    // The fake host's default route is fast: the reply takes NAME's uplink table (slow), as the
    // connection came in by slow.
    expect(await connect('slow', `${HOST_SLOW_ADDR}:8080`)).toBe(`inner ${CLIENT_ADDR}`);
  });

  it('a connection that comes in by fast is answered by fast, although NAME routes by slow', async () => {
    expect(await connect('fast', `${HOST_FAST_ADDR}:8080`)).toBe(`inner ${CLIENT_ADDR}`);
  });

  it('the same with strict reverse-path filtering', async () => {
    const keys = ['all', 'default', FAST_DEV, SLOW_DEV].map((i) => `net.ipv4.conf.${i}.rp_filter`);
    const before = (await w.inHost(['sysctl', '-n', ...keys])).stdout.trim().split('\n');
    expectOk(await w.inHost(['sysctl', '-q', '-w', ...keys.map((k) => `${k}=1`)]));
    try {
      expect(await connect('slow', `${HOST_SLOW_ADDR}:8080`)).toBe(`inner ${CLIENT_ADDR}`);
      expect(await connect('fast', `${HOST_FAST_ADDR}:8080`)).toBe(`inner ${CLIENT_ADDR}`);
    } finally {
      expectOk(await w.inHost(['sysctl', '-q', '-w', ...keys.map((k, i) => `${k}=${before[i]}`)]));
    }
  });

  it('from the host itself: 127.0.0.1 and its own addresses', async () => {
    expect(await connect('host', `127.0.0.1:8080`)).toMatch(/^inner 10\./);
    expect(await connect('host', `${HOST_FAST_ADDR}:8080`)).toBe(`inner ${HOST_FAST_ADDR}`);
  });

  it('with HOSTADDR only that address; traffic to an address the host does not own is not taken', async () => {
    expect(await connect('slow', `${HOST_SLOW_ADDR}:8081`)).toBe(`inner ${CLIENT_ADDR}`);
    expect(await connect('fast', `${HOST_FAST_ADDR}:8081`)).toBe('');
    // 192.0.2.77 is routed through the fake host (which forwards), not one of its addresses:
    // GHSA-jv3w-x3r3-g6rm was DNAT of exactly such traffic.
    const gws = `${w.prefix}gws`;
    expectOk(await w.inNetns(gws, ['ip', 'route', 'add', '192.0.2.77/32', 'via', HOST_SLOW_ADDR]));
    try {
      expect(await connect('slow', '192.0.2.77:8080')).toBe('');
    } finally {
      expectOk(await w.inNetns(gws, ['ip', 'route', 'del', '192.0.2.77/32']));
    }
  });

  it('status and list --json show the published ports', async () => {
    const s = await statusJson(w, name);
    expect((s as unknown as { publish: string[] }).publish).toEqual(['8080:80/tcp', `${HOST_SLOW_ADDR}:8081:80/tcp`, '5353:53/udp']);
    const l = await w.nsroute(['list', '--json']);
    expectOk(l);
    expect((JSON.parse(l.stdout) as { name: string; publish: string[] }[]).find((x) => x.name === name)?.publish).toContain('8080:80/tcp');
  });

  it('a host port another NAME publishes, or a host process listens on, is refused naming who; nothing changes', async () => {
    const before = await w.snapshot();
    const other = w.name('pub2');
    const r = await w.nsroute(['up', other, ...ROUTE, '--publish', '8080:80']);
    expectUserError(r, 2);
    expect(r.stderr).toContain(name);
    const l = await w.inHost(['sh', '-c', 'socat TCP4-LISTEN:9090,reuseaddr,fork EXEC:true >/dev/null 2>&1 </dev/null & echo $!']);
    const listener = Number(l.stdout.trim());
    try {
      await waitFor(async () => (await w.inHost(['ss', '-Hltn', 'sport = :9090'])).stdout.includes(':9090'), 'host listener');
      const r2 = await w.nsroute(['up', other, ...ROUTE, '--publish', '9090:80']);
      expectUserError(r2, 2);
      expect(r2.stderr).toContain('socat');
    } finally {
      stop(listener);
    }
    expect(w.netnsExists(other)).toBe(false);
    expect(await w.snapshot()).toEqual(before);
  });

  it('`nft flush ruleset`: the watcher puts the published ports back', async () => {
    withPub = await w.snapshot();
    expectOk(await w.inHost(['nft', 'flush', 'ruleset']));
    await waitFor(async () => (await w.inHost(['nft', 'list', 'map', 'inet', 'nsroute', 'publish_any'])).stdout.includes('8080'), 'publish map back');
    expect(await connect('slow', `${HOST_SLOW_ADDR}:8080`)).toBe(`inner ${CLIENT_ADDR}`);
    expect((await w.snapshot()).nft).toEqual(withPub.nft);
  });
});
