// Proves the test world itself: both uplinks answer, DNS differs per gateway, snapshots are
// stable and sensitive, and destroy() leaves nothing behind.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cgroupRoots,
  createWorld,
  FAST_ANSWER,
  HOST_FAST_ADDR,
  HOST_FAST_ADDR6,
  HOST_SLOW_ADDR,
  PATH_SERVER,
  SLOW_ANSWER,
  SLOW_GW,
  DNS_SERVER,
  FAST_GW,
  waitFor,
  expandV6,
  DHCP_FIRST,
  DHCP_LAST,
  HOST_LAN_ADDR,
  LAN_BRIDGE,
  LAN_BRIDGE_MAC,
  LAN_DEV,
  LAN_GW,
  LAN_PREFIX,
  type World,
} from '../world/world.js';
import { LAN_PATH4, PATH4 } from '../world/helpers.js';

describe('test world', () => {
  let w: World;
  beforeAll(async () => {
    w = await createWorld();
  });
  afterAll(async () => {
    await w?.destroy();
  });

  it('names every namespace with the world prefix', () => {
    expect(w.prefix).toMatch(/^nt[0-9a-f]{4}-$/);
    for (const ns of [w.host, w.gwFast, w.gwSlow]) {
      expect(ns.startsWith(w.prefix)).toBe(true);
      expect(w.netnsExists(ns)).toBe(true);
    }
  });

  it('routes the fake host through the fast gateway by default, v4 and v6', async () => {
    expect(await w.hostPath(4)).toBe(`fast ${HOST_FAST_ADDR}`);
    expect(await w.hostPath(6)).toBe(`fast6 [${expandV6(HOST_FAST_ADDR6)}]`);
    const get = await w.inHost(['ip', 'route', 'get', PATH_SERVER]);
    expect(get.stdout).toContain(`via ${FAST_GW} dev upf`);
  });

  it('reaches the slow path server when the fake host routes there, and the snapshot sees it', async () => {
    const before = await w.snapshot();
    const add = await w.inHost(['ip', 'route', 'add', `${PATH_SERVER}/32`, 'via', SLOW_GW]);
    expect(add.exitCode).toBe(0);
    try {
      expect((await w.inHost(['ip', 'route', 'get', PATH_SERVER])).stdout).toContain(`via ${SLOW_GW} dev ups`);
      expect(await w.hostPath(4)).toBe(`slow ${HOST_SLOW_ADDR}`);
      expect(await w.snapshot()).not.toEqual(before);
    } finally {
      await w.inHost(['ip', 'route', 'del', `${PATH_SERVER}/32`, 'via', SLOW_GW]);
    }
    expect(await w.snapshot()).toEqual(before);
  });

  it('does not answer traffic that comes from an address the gateway cannot route back to', async () => {
    // Source 10.231.x would be a namespace that nsroute forgot to masquerade.
    const r = await w.inHost(['sh', '-c', `ip addr add 10.231.250.1/32 dev lo && socat -T1 - TCP4:${PATH_SERVER}:7000,bind=10.231.250.1,connect-timeout=1; rc=$?; ip addr del 10.231.250.1/32 dev lo; exit $rc`]);
    expect(r.stdout).toBe('');
    expect(r.exitCode).not.toBe(0);
  });

  it('answers DNS differently per gateway and logs queries per server', async () => {
    const name = `world-${Date.now()}.probe.test`;
    expect(await w.hostLookup(FAST_GW, name)).toEqual([FAST_ANSWER]);
    expect(await w.hostLookup(SLOW_GW, name)).toEqual([SLOW_ANSWER]);
    expect(await w.hostLookup(DNS_SERVER, `x.${name}`)).toEqual([FAST_ANSWER]);
    expect(await w.waitDnsQueries('fast', name)).toBeGreaterThanOrEqual(1);
    expect(await w.waitDnsQueries('slow', name)).toBeGreaterThanOrEqual(1);
    expect(await w.waitDnsQueries('fast', `x.${name}`)).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('slow', `x.${name}`)).toBe(0);
  });

  it('takes a stable snapshot', async () => {
    const a = await w.snapshot();
    const b = await w.snapshot();
    expect(b).toEqual(a);
    expect(Object.keys(a.sysctl).length).toBeGreaterThan(100);
    expect(a.sysctl['net.ipv4.ip_forward']).toBe('0');
  });

  it('sees a rule, an nft table and a sysctl change', async () => {
    const before = await w.snapshot();
    for (const [add, del] of [
      [['ip', 'rule', 'add', 'fwmark', '0x1', 'lookup', '100', 'pref', '4200'], ['ip', 'rule', 'del', 'pref', '4200']],
      [['nft', 'add', 'table', 'inet', 'worldtest'], ['nft', 'delete', 'table', 'inet', 'worldtest']],
      [['sysctl', '-w', 'net.ipv4.ip_forward=1'], ['sysctl', '-w', 'net.ipv4.ip_forward=0']],
      [['ip', 'link', 'add', 'wt0', 'type', 'veth', 'peer', 'name', 'wt1'], ['ip', 'link', 'del', 'wt0']],
    ]) {
      expect((await w.inHost(add!)).exitCode).toBe(0);
      try {
        expect(await w.snapshot()).not.toEqual(before);
      } finally {
        expect((await w.inHost(del!)).exitCode).toBe(0);
      }
      expect(await w.snapshot()).toEqual(before);
    }
  });

  it('destroy() removes every namespace, process and file of the world, twice over', async () => {
    const w2 = await createWorld();
    // A namespace created from inside the fake host, as nsroute does.
    expect((await w2.inHost(['ip', 'netns', 'add', w2.name('extra')])).exitCode).toBe(0);
    const sleeper = w2.inNetns(w2.name('extra'), ['sleep', '600']);
    const dir = w2.dir;
    mkdirSync(`/etc/netns/${w2.name('extra')}`, { recursive: true });
    await w2.destroy();
    await w2.destroy();
    const r = await sleeper;
    expect(r.signal ?? r.exitCode).toBeTruthy();
    expect(readdirSync('/run/netns').filter((n) => n.startsWith(w2.prefix))).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`/etc/netns/${w2.name('extra')}`)).toBe(false);
  });

  // A test process SIGKILLed while a NAME was up (or its container ran) leaves /etc/netns/NAME
  // and the test's cgroups; when its namespaces and directory were removed some other way,
  // nothing named the prefix any more and they stayed.
  it("the next world removes /etc/netns entries and cgroups of a world that is gone, never a live world's", async () => {
    const cgRoot = cgroupRoots()[0];
    let gone = '';
    do gone = `nt${randomBytes(2).toString('hex')}-`;
    while (
      readdirSync('/run/netns').some((n) => n.startsWith(gone)) ||
      existsSync(join(tmpdir(), `nsroute-world-${gone}`)) ||
      existsSync(`/etc/netns/${gone}x`) ||
      (cgRoot !== undefined && existsSync(join(cgRoot, `${gone}cg`)))
    );
    const orphan = `/etc/netns/${gone}x`;
    const kept = `/etc/netns/${w.name('kept')}`;
    const orphanCg = cgRoot && join(cgRoot, `${gone}cg`);
    const keptCg = cgRoot && join(cgRoot, w.name('cgkept'));
    let w3: World | undefined;
    try {
      for (const d of [orphan, kept]) {
        mkdirSync(d, { recursive: true });
        writeFileSync(join(d, 'resolv.conf'), 'nameserver 198.18.0.53\n');
      }
      if (orphanCg && keptCg) {
        mkdirSync(join(orphanCg, 'payload'), { recursive: true });
        mkdirSync(keptCg);
      }
      w3 = await createWorld();
      expect(existsSync(orphan)).toBe(false);
      expect(existsSync(join(kept, 'resolv.conf'))).toBe(true);
      if (orphanCg && keptCg) {
        expect(existsSync(orphanCg)).toBe(false);
        expect(existsSync(keptCg)).toBe(true);
      }
    } finally {
      await w3?.destroy();
      rmSync(orphan, { recursive: true, force: true });
      rmSync(kept, { recursive: true, force: true });
      for (const d of [orphanCg && join(orphanCg, 'payload'), orphanCg, keptCg]) if (d && existsSync(d)) rmdirSync(d);
    }
  });
});

// The LAN options (lan, lanBridge, lanDhcp): what bridge and macvlan mode rely on, proven with
// plain ip commands (a namespace on the LAN made by hand, as nsroute would make it).
const lastOctet = (a: string): number => Number(a.split('.')[3]);

async function handMadeLanNamespace(w: World, suffix: string, addr: string, parent: 'bridge' | 'macvlan'): Promise<string> {
  const ns = w.name(suffix);
  const attach =
    parent === 'bridge'
      ? `ip link add hx0 type veth peer name eth0 netns ${ns} && ip link set hx0 master ${LAN_BRIDGE} up`
      : `ip link add link ${LAN_DEV} name hx0 type macvlan mode bridge && ip link set hx0 netns ${ns} && ip -n ${ns} link set hx0 name eth0`;
  const r = await w.inHost([
    'sh',
    '-c',
    `set -e; ip netns add ${ns}; ${attach}; ip -n ${ns} link set lo up; ip -n ${ns} link set eth0 up; ` +
      `ip -n ${ns} addr add ${addr}/${LAN_PREFIX} dev eth0; ip -n ${ns} route add default via ${LAN_GW}`,
  ]);
  expect(r.exitCode, r.stderr).toBe(0);
  return ns;
}

async function removeHandMade(w: World, ns: string): Promise<void> {
  await w.inHost(['sh', '-c', `ip link del hx0 2>/dev/null; ip netns del ${ns}`]);
}

describe('test world: option lan', () => {
  let w: World;
  beforeAll(async () => {
    w = await createWorld({ lan: true });
  });
  afterAll(async () => {
    await w?.destroy();
  });

  it('gives the fake host lan1 with its address, and no default route through it', async () => {
    const addr = JSON.parse((await w.inHost(['ip', '-j', '-4', 'addr', 'show', 'dev', LAN_DEV])).stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
    expect(addr[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${HOST_LAN_ADDR}/${LAN_PREFIX}`]);
    expect((await w.inHost(['ip', 'route', 'show', 'default'])).stdout).not.toContain(LAN_DEV);
    expect(await w.hostLanPath()).toBe(`lan ${HOST_LAN_ADDR}`);
    expect(await w.hostPath(4)).toBe(`fast ${HOST_FAST_ADDR}`);
  });

  it('a namespace on the LAN (macvlan) is seen by the far side with its own address', async () => {
    const before = await w.snapshot();
    const ns = await handMadeLanNamespace(w, 'hm1', '10.99.3.77', 'macvlan');
    try {
      const r = await w.inNetns(ns, ['sh', '-c', `${PATH4.join(' ')}; ${LAN_PATH4.join(' ')}`]);
      expect(r.stdout).toBe('fast 10.99.3.77\nlan 10.99.3.77\n');
    } finally {
      await removeHandMade(w, ns);
    }
    expect(await w.snapshot()).toEqual(before);
  });
});

describe('test world: options lanBridge and lanDhcp', () => {
  let w: World;
  beforeAll(async () => {
    w = await createWorld({ lanBridge: true, lanDhcp: true });
  });
  afterAll(async () => {
    await w?.destroy();
  });

  it('puts lan1 into br0, which holds the host address', async () => {
    const link = JSON.parse((await w.inHost(['ip', '-j', 'link', 'show', 'dev', LAN_DEV])).stdout) as { master?: string }[];
    expect(link[0]?.master).toBe(LAN_BRIDGE);
    const br = JSON.parse((await w.inHost(['ip', '-j', '-d', 'addr', 'show', 'dev', LAN_BRIDGE])).stdout) as {
      address: string;
      linkinfo: { info_kind: string };
      addr_info: { family: string; local: string; prefixlen: number }[];
    }[];
    expect(br[0]?.linkinfo.info_kind).toBe('bridge');
    expect(br[0]?.address).toBe(LAN_BRIDGE_MAC);
    expect(br[0]?.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${HOST_LAN_ADDR}/${LAN_PREFIX}`]);
    expect(await w.hostLanPath()).toBe(`lan ${HOST_LAN_ADDR}`);
  });

  it('leases an address with router and DNS by DHCP, and logs the ACK and the RELEASE', async () => {
    const before = await w.snapshot();
    const ns = await handMadeLanNamespace(w, 'hm2', '10.99.3.78', 'bridge');
    try {
      // The probe sends to 255.255.255.255: it needs a route for it.
      expect((await w.inNetns(ns, ['ip', 'route', 'add', '255.255.255.255/32', 'dev', 'eth0'])).exitCode).toBe(0);
      const lease = await w.dhcpProbe(ns, 'eth0', { release: true });
      expect(lastOctet(lease.address)).toBeGreaterThanOrEqual(lastOctet(DHCP_FIRST));
      expect(lastOctet(lease.address)).toBeLessThanOrEqual(lastOctet(DHCP_LAST));
      expect(lease).toMatchObject({ server: LAN_GW, router: LAN_GW, dns: [DNS_SERVER] });
      await waitFor(() => w.dhcpEvents().some((x) => x.event === 'DHCPRELEASE' && x.mac === lease.mac), 'DHCPRELEASE in the dnsmasq log', 3000);
      const events = w.dhcpEvents().filter((x) => x.mac === lease.mac);
      expect(events.filter((x) => ['DHCPACK', 'DHCPRELEASE'].includes(x.event)).map((x) => `${x.event} ${x.address}`)).toEqual([
        `DHCPACK ${lease.address}`,
        `DHCPRELEASE ${lease.address}`,
      ]);
    } finally {
      await removeHandMade(w, ns);
    }
    expect(await w.snapshot()).toEqual(before);
  });
});
