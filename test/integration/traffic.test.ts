// What users care about first: the command's traffic leaves by the chosen uplink, its DNS goes
// where configured (and by that path), and nothing escapes by IPv6.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createWorld,
  DNS_SERVER,
  FAST_ANSWER,
  FAST_GW,
  HOST_FAST_ADDR,
  HOST_SLOW_ADDR,
  PATH_PORT,
  PATH_SERVER,
  PATH_SERVER6,
  SLOW_ANSWER,
  SLOW_GW,
  type World,
} from '../world/world.js';
import { ahostsAddresses, expectOk, PATH4, probeName, show } from '../world/helpers.js';

let w: World;
beforeAll(async () => {
  // With IPv6 forwarding on in the fake host, an IPv6 route in the namespace would really leak.
  w = await createWorld({ ipv6Forwarding: true });
});
afterAll(async () => {
  await w?.destroy();
});

describe('traffic', () => {
  it('--via sends the command through that gateway', async () => {
    const r = await w.nsroute(['exec', w.name('t1'), '--via', SLOW_GW, '--', ...PATH4]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
  });

  it('without --via the command follows the host routes (fast uplink)', async () => {
    const r = await w.nsroute(['exec', w.name('t2'), '--', ...PATH4]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(`fast ${HOST_FAST_ADDR}`);
  });

  it('--via the default gateway itself goes fast', async () => {
    const r = await w.nsroute(['exec', w.name('t3'), '--via', FAST_GW, '--', ...PATH4]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(`fast ${HOST_FAST_ADDR}`);
  });

  it("keeps the host's own traffic on the fast uplink while a slow namespace is up", async () => {
    const n = w.name('t4');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    try {
      expect(await w.hostPath(4)).toBe(`fast ${HOST_FAST_ADDR}`);
      const get = await w.inHost(['ip', 'route', 'get', PATH_SERVER]);
      expect(get.stdout).toContain(`via ${FAST_GW} dev upf`);
      const r = await w.nsroute(['exec', n, '--', ...PATH4]);
      expectOk(r);
      expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
      // And the host once more, after the namespace's connection.
      expect(await w.hostPath(4)).toBe(`fast ${HOST_FAST_ADDR}`);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
  });
});

describe('DNS', () => {
  const defaultResolv = `nameserver ${FAST_GW}\n`;
  afterEach(() => {
    w.writeResolvConf(defaultResolv);
    w.writeResolvedConf(null);
  });

  async function lookupInside(name: string, args: string[], probe: string) {
    const r = await w.nsroute(['exec', name, ...args, '--', 'sh', '-c', `cat /etc/resolv.conf; echo ---; getent ahostsv4 ${probe}`]);
    const [resolv = '', answer = ''] = r.stdout.split('---\n');
    const nameservers = resolv
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((s): s is string => !!s);
    return { r, nameservers, addresses: ahostsAddresses(answer) };
  }

  it('--dns with --via: the answer comes from the slow gateway, which alone logs the query', async () => {
    const probe = probeName('dns-via');
    const { r, nameservers, addresses } = await lookupInside(w.name('d1'), ['--dns', DNS_SERVER, '--via', SLOW_GW], probe);
    expectOk(r);
    expect(nameservers).toEqual([DNS_SERVER]);
    expect(addresses).toEqual([SLOW_ANSWER]);
    expect(await w.waitDnsQueries('slow', probe)).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('fast', probe)).toBe(0);
  });

  it('--dns without --via: the same server address is reached by the fast path', async () => {
    const probe = probeName('dns-novia');
    const { r, addresses } = await lookupInside(w.name('d2'), ['--dns', DNS_SERVER], probe);
    expectOk(r);
    expect(addresses).toEqual([FAST_ANSWER]);
    expect(await w.waitDnsQueries('fast', probe)).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('slow', probe)).toBe(0);
  });

  it('without --dns the name servers come from the host resolv.conf', async () => {
    // The slow dnsmasq also listens on its link address, so the answer tells which file line was used.
    w.writeResolvConf(`# host\nsearch example.invalid\nnameserver ${SLOW_GW}\n`);
    const probe = probeName('dns-host');
    const { r, nameservers, addresses } = await lookupInside(w.name('d3'), [], probe);
    expectOk(r);
    expect(nameservers).toEqual([SLOW_GW]);
    expect(addresses).toEqual([SLOW_ANSWER]);
    expect(await w.waitDnsQueries('slow', probe)).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('fast', probe)).toBe(0);

    w.writeResolvConf(`nameserver ${FAST_GW}\n`);
    const probe2 = probeName('dns-host');
    const second = await lookupInside(w.name('d3'), [], probe2);
    expectOk(second.r);
    expect(second.nameservers).toEqual([FAST_GW]);
    expect(second.addresses).toEqual([FAST_ANSWER]);
  });

  it('a loopback stub in resolv.conf falls back to the resolved upstream file', async () => {
    w.writeResolvConf('nameserver 127.0.0.53\noptions edns0 trust-ad\n');
    w.writeResolvedConf(`# upstream\nnameserver ${SLOW_GW}\n`);
    const probe = probeName('dns-resolved');
    const { r, nameservers, addresses } = await lookupInside(w.name('d4'), [], probe);
    expectOk(r);
    expect(nameservers).toEqual([SLOW_GW]);
    expect(addresses).toEqual([SLOW_ANSWER]);
  });

  it('a loopback stub and no resolved file fall back to the gateway', async () => {
    w.writeResolvConf('nameserver 127.0.0.53\n');
    const probe = probeName('dns-gw');
    const { r, nameservers, addresses } = await lookupInside(w.name('d5'), ['--via', SLOW_GW], probe);
    expectOk(r);
    expect(nameservers).toEqual([SLOW_GW]);
    expect(addresses).toEqual([SLOW_ANSWER]);
    expect(await w.waitDnsQueries('slow', probe)).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('fast', probe)).toBe(0);
  });

  it('/etc/netns/NAME/resolv.conf exists while up and is gone after', async () => {
    const n = w.name('d6');
    const file = `/etc/netns/${n}/resolv.conf`;
    expect(existsSync(file)).toBe(false);
    expectOk(await w.nsroute(['up', n, '--dns', DNS_SERVER]));
    try {
      expect(existsSync(file)).toBe(true);
      expect(readFileSync(file, 'utf8')).toMatch(new RegExp(`^nameserver ${DNS_SERVER.replace(/\./g, '\\.')}$`, 'm'));
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(existsSync(file)).toBe(false);
    expect(existsSync(`/etc/netns/${n}`)).toBe(false);

    // Ephemeral: gone once the command has exited.
    const r = await w.nsroute(['exec', n, '--dns', DNS_SERVER, '--', 'sh', '-c', `test -e ${file} && echo present`]);
    expectOk(r);
    expect(r.stdout.trim(), show(r)).toBe('present');
    expect(existsSync(`/etc/netns/${n}`)).toBe(false);
  });
});

describe('no IPv6 escape', () => {
  // "Fails fast" is a property, not a duration: the kernel refuses the connection at once
  // (ENETUNREACH, no route), rather than a packet going out and the probe waiting for an answer.
  // The probe would wait a whole minute for one, so the message below cannot come from a timeout.
  const PATIENT_PATH6 = ['socat', '-T20', '-t20', '-', `TCP6:[${PATH_SERVER6}]:${PATH_PORT},connect-timeout=60`];
  it.each([
    ['without --via', []],
    ['with --via', ['--via', SLOW_GW]],
  ])('the host reaches the IPv6 server, the namespace (%s) cannot: the kernel says it has no route', async (_what, via) => {
    expect(await w.hostPath(6)).toMatch(/^fast6 /);
    const r = await w.nsroute(['exec', w.name('v6'), ...via, '--', ...PATIENT_PATH6]);
    expect(r.stdout, show(r)).toBe('');
    expect(r.exitCode, show(r)).not.toBe(0);
    expect(r.exitCode, show(r)).toBeLessThan(125);
    expect(r.signal, show(r)).toBeNull();
    expect(r.stderr, show(r)).toMatch(/connect\(.*\): Network is unreachable/);
    expect(r.stderr, show(r)).not.toMatch(/timed out|timeout/i);
  });

  it('the namespace has no IPv6 address on eth0 and no IPv6 route', async () => {
    const r = await w.nsroute([
      'exec',
      w.name('v6b'),
      '--via',
      SLOW_GW,
      '--',
      'sh',
      '-c',
      'echo "addr:$(ip -6 -o addr show dev eth0)"; echo "route:$(ip -6 route show)"',
    ]);
    expectOk(r);
    expect(r.stdout).toBe('addr:\nroute:\n');
  });
});
