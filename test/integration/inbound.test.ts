// Traffic in and traffic shaped (issue 13): published ports (`--publish`) and bandwidth caps
// (`--rate-down` / `--rate-up`) of nat namespaces, with a real kernel, nft, tc and servers.
// Clients stand in the gateways and bind the gateways' 198.18.0.10 (on their lo): an address
// the fake host reaches only by a route, so a reply that leaves by the wrong uplink never
// arrives (both gateways hold 198.18.0.10; neither forwards).
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DNS_SERVER, FAST_DEV, HOST_FAST_ADDR, HOST_SLOW_ADDR, LAN_DEV, LAN_GW, LAN_PREFIX, SLOW_DEV, SLOW_GW, waitFor, type Snapshot, type World } from '../world/world.js';
import { expectOk, expectUserError, show, statusJson, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { lan: true });

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

  it('`check` connects to each published port from the host; a lost element fails it until gc', async () => {
    type Report = { ok: boolean; checks: { id: string; ok: boolean; ports?: { publish: string; result: string }[] }[] };
    const check = async () => {
      const r = await w.nsroute(['check', name, '--json']);
      return { r, pub: (JSON.parse(r.stdout) as Report).checks.find((c) => c.id === 'publish')! };
    };
    const good = await check();
    expect(good.pub.ok, show(good.r)).toBe(true);
    expect(good.pub.ports).toEqual([
      { publish: '8080:80/tcp', target: '127.0.0.1:8080', result: 'reached' },
      { publish: `${HOST_SLOW_ADDR}:8081:80/tcp`, target: `${HOST_SLOW_ADDR}:8081`, result: 'reached' },
      { publish: '5353:53/udp', target: '127.0.0.1:5353', result: 'untested' },
    ]);
    expectOk(await w.inHost(['nft', 'delete', 'element', 'inet', 'nsroute', 'publish_any', '{ tcp . 8080 }']));
    const bad = await check();
    expect(bad.pub.ok, show(bad.r)).toBe(false);
    expect(bad.r.exitCode).not.toBe(0);
    expect(bad.pub.ports?.[0]?.result).toBe('failed');
    expectOk(await w.nsroute(['gc']));
    expect((await check()).pub.ok).toBe(true);
  });

  it('`nft flush ruleset`: the watcher puts the published ports back', async () => {
    withPub = await w.snapshot();
    expectOk(await w.inHost(['nft', 'flush', 'ruleset']));
    await waitFor(async () => (await w.inHost(['nft', 'list', 'map', 'inet', 'nsroute', 'publish_any'])).stdout.includes('8080'), 'publish map back');
    expect(await connect('slow', `${HOST_SLOW_ADDR}:8080`)).toBe(`inner ${CLIENT_ADDR}`);
    expect((await w.snapshot()).nft).toEqual(withPub.nft);
  });
});

// Crash safety of the new steps: nsroute SIGKILLed right after each (NSROUTE_TEST_CRASH, see
// faults.test.ts), with another NAME publishing a port and capped meanwhile, whose elements
// must survive exactly. Steps of `up` with --via, --publish and a cap: netns-add, route-guard,
// veth-add, ns-config, netns-files, ip-forward, uplink-route, fw-holes, nft-member,
// publish (9), rate (10). (Every other step: faults.test.ts.)
describe('SIGKILL after the publish and rate steps, then gc', () => {
  const UP = (name: string) => ['up', name, ...ROUTE, '--publish', '8090:80', '--publish', '5354:53/udp', '--rate-down', '8mbit', '--rate-up', '4mbit'];
  let withNeighbour: Snapshot;
  let neighbour: string;
  beforeAll(async () => {
    neighbour = w.name('nb');
    expectOk(await w.nsroute(['up', neighbour, ...ROUTE, '--publish', '7070:70', '--rate-down', '2mbit']));
    withNeighbour = await w.snapshot();
  });
  afterAll(async () => {
    expectOk(await w.nsroute(['down', neighbour]));
    expect(await w.snapshot()).toEqual(clean);
  });

  async function gcRolledBack(name: string): Promise<void> {
    const g = await w.nsroute(['gc', '--json']);
    expectOk(g);
    const report = JSON.parse(g.stdout) as { rolledBack: string[]; finished: string[] };
    expect([...report.rolledBack, ...report.finished], show(g)).toEqual([name]);
    expect(await w.snapshot()).toEqual(withNeighbour);
  }

  it.each([9, 10])('up, crash after step %i', async (k) => {
    const name = w.name(`ca${k}`);
    const r = await w.nsroute(UP(name), { env: { NSROUTE_TEST_CRASH: `apply:${k}` } });
    expect(r.signal, show(r)).toBe('SIGKILL');
    await gcRolledBack(name);
  });

  it.each([10, 9])('down, crash after undoing step %i', async (k) => {
    const name = w.name(`cu${k}`);
    expectOk(await w.nsroute(UP(name)));
    const r = await w.nsroute(['down', name], { env: { NSROUTE_TEST_CRASH: `undo:${k}` } });
    expect(r.signal, show(r)).toBe('SIGKILL');
    await gcRolledBack(name);
  });

  it('a cap changed by `up` on a running NAME, crash after its step: down is still exact', async () => {
    const name = w.name('cc');
    expectOk(await w.nsroute(UP(name)));
    const r = await w.nsroute(['up', name, '--rate-down', '16mbit'], { env: { NSROUTE_TEST_CRASH: 'apply:11' } });
    expect(r.signal, show(r)).toBe('SIGKILL');
    expectOk(await w.nsroute(['down', name]));
    expect(await w.snapshot()).toEqual(withNeighbour);
  });

  it('the run dir lost: gc reads the published ports and caps back from the kernel, down undoes them', async () => {
    const name = w.name('lost');
    expectOk(await w.nsroute(UP(name)));
    const before = await statusJson(w, name);
    const snap = await w.snapshot();
    rmSync(`${w.runDir}/ns/${name}`, { recursive: true, force: true });
    const g = await w.nsroute(['gc', '--json']);
    expectOk(g);
    expect((JSON.parse(g.stdout) as { recovered: string[] }).recovered).toEqual([name]);
    expect(await w.snapshot()).toEqual(snap);
    const after = (await statusJson(w, name)) as unknown as { publish: string[]; rateDown: string; rateUp: string };
    const b = before as unknown as typeof after;
    expect({ publish: [...after.publish].sort(), rateDown: after.rateDown, rateUp: after.rateUp }).toEqual({ publish: [...b.publish].sort(), rateDown: b.rateDown, rateUp: b.rateUp });
    expectOk(await w.nsroute(['down', name]));
    expect(await w.snapshot()).toEqual(withNeighbour);
  });
});

// A bulk transfer over TCP, in node: `send HOST PORT` writes zeros until the peer closes;
// `recv PORT SECONDS` listens, takes one connection and counts what arrives during SECONDS
// after its first byte, then prints {bytes, secs} (secs from the first byte to the last
// counted). Load can only make the rate it reports lower.
const TRANSFER_JS = `
const net = require('node:net');
const [mode, a, b] = process.argv.slice(1);
if (mode === 'send') {
  const chunk = Buffer.alloc(64 * 1024);
  const go = () => {
    const s = net.connect(Number(b), a);
    s.on('error', () => setTimeout(go, 100));
    const pump = () => { while (s.write(chunk)) {} };
    s.on('connect', pump);
    s.on('drain', pump);
    s.on('close', () => process.exit(0));
  };
  go();
} else {
  const limit = Number(b) * 1e9;
  const srv = net.createServer((s) => {
    let bytes = 0, first, last;
    s.on('data', (d) => {
      const now = process.hrtime.bigint();
      if (first === undefined) first = now;
      if (Number(now - first) > limit) { finish(); return; }
      bytes += d.length; last = now;
    });
    let done = false;
    const finish = () => {
      if (done) return; done = true;
      console.log(JSON.stringify({ bytes, secs: Number(last - first) / 1e9 }));
      s.destroy(); srv.close(); process.exit(0);
    };
    s.on('close', finish);
  });
  srv.listen(Number(a), () => console.log('listening'));
}
`;

describe('bandwidth caps', () => {
  let name: string;
  beforeAll(async () => {
    name = w.name('cap');
    expectOk(await w.nsroute(['up', name, ...ROUTE, '--rate-down', '8mbit', '--rate-up', '4mbit']));
  });
  afterAll(async () => {
    expectOk(await w.nsroute(['down', name, '--force']));
    expect(await w.snapshot()).toEqual(clean);
  });

  const qdisc = async (where: 'host' | 'ns') => {
    const st = await statusJson(w, name);
    const r = where === 'host' ? await w.inHost(['tc', '-j', 'qdisc', 'show', 'dev', st.hostInterface, 'root']) : await w.inNetns(name, ['tc', '-j', 'qdisc', 'show', 'dev', st.namespaceInterface, 'root']);
    return (JSON.parse(r.stdout || '[]') as { kind: string; options?: { rate?: number } }[]).find((q) => q.kind === 'tbf');
  };

  // A receiver in the slow gateway or in NAME, the sender on the other side; bits per second.
  // Down: the sender is the fake host itself (the gateways have no route to NAME's address),
  // through the host end of the veth; up: NAME sends to the slow gateway, masqueraded.
  async function measure(direction: 'down' | 'up'): Promise<number> {
    const gws = `${w.prefix}gws`;
    const st = await statusJson(w, name);
    return direction === 'down' ? transfer(name, w.host, st.namespaceAddress, 9101) : transfer(gws, name, CLIENT_ADDR, 9102);
  }

  async function transfer(rx: string, tx: string, target: string, port: number): Promise<number> {
    const recv = w.inNetns(rx, [process.execPath, '-e', TRANSFER_JS, 'recv', String(port), '3']);
    await waitFor(async () => (await w.inNetns(rx, ['ss', '-Hltn', `sport = :${port}`])).stdout.includes(`:${port}`), 'receiver');
    const send = w.inNetns(tx, [process.execPath, '-e', TRANSFER_JS, 'send', target, String(port)]);
    const [r] = await Promise.all([recv, send]);
    expectOk(r);
    const { bytes, secs } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bytes: number; secs: number };
    expect(secs, show(r)).toBeGreaterThan(1);
    if (process.env.NSROUTE_TEST_SHOW_RATES) console.log(rx, tx, (bytes * 8) / secs);
    return (bytes * 8) / secs;
  }

  it('the qdiscs exist while NAME is up', async () => {
    expect((await qdisc('host'))?.options?.rate).toBe(8e6 / 8);
    expect((await qdisc('ns'))?.options?.rate).toBe(4e6 / 8);
  });

  it('a bulk transfer into NAME never exceeds the down cap by more than 10%', async () => {
    expect(await measure('down')).toBeLessThan(8e6 * 1.1);
  });

  it('a bulk transfer out of NAME never exceeds the up cap by more than 10%', async () => {
    expect(await measure('up')).toBeLessThan(4e6 * 1.1);
  });

  it('`up` with another cap changes it in place, without recreating NAME', async () => {
    const ino = (await w.inHost(['stat', '-L', '-c', '%i', `/run/netns/${name}`])).stdout.trim();
    expectOk(await w.nsroute(['up', name, '--rate-down', '2mbit']));
    expect((await qdisc('host'))?.options?.rate).toBe(2e6 / 8);
    expect((await qdisc('ns'))?.options?.rate).toBe(4e6 / 8);
    expect((await w.inHost(['stat', '-L', '-c', '%i', `/run/netns/${name}`])).stdout.trim()).toBe(ino);
    expect(await measure('down')).toBeLessThan(2e6 * 1.1);
  });

  it('bridge mode: the down cap sits on the host end of its veth too', async () => {
    const before = await w.snapshot();
    const b = w.name('capb');
    const addr = '10.99.3.50';
    expectOk(await w.nsroute(['up', b, '--mode', 'bridge', '--uplink', LAN_DEV, '--address', `${addr}/${LAN_PREFIX}`, '--via', LAN_GW, '--rate-down', '4mbit']));
    try {
      // From the fast gateway's LAN side (10.99.3.1) across the host's bridge into NAME.
      expect(await transfer(b, `${w.prefix}gwf`, addr, 9103)).toBeLessThan(4e6 * 1.1);
    } finally {
      expectOk(await w.nsroute(['down', b, '--force']));
    }
    expect(await w.snapshot()).toEqual(before);
  });

  it('bad rates are refused before any change', async () => {
    const before = await w.snapshot();
    for (const bad of ['fast', '1bit']) {
      const r = await w.nsroute(['up', w.name('bad'), '--rate-down', bad]);
      expectUserError(r, 2);
    }
    expect(await w.snapshot()).toEqual(before);
  });
});
