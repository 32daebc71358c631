// Profiles: $NSROUTE_CONFIG_DIR/NAME.toml carries the route options; flags override it;
// a broken profile is a clear error naming the file, with the host unchanged.
import { describe, expect, it } from 'vitest';
import {
  DNS_SERVER,
  FAST_ANSWER,
  FAST_GW,
  HOST_FAST_ADDR,
  HOST_SLOW_ADDR,
  SLOW_ANSWER,
  SLOW_DEV,
  SLOW_GW,
  type Snapshot,
  type World,
} from '../world/world.js';
import { ahostsAddresses, expectOk, expectUserError, PATH4, probeName, show, statusJson, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const pathAndDns = (probe: string) => ['sh', '-c', `${PATH4.join(' ')}; getent ahostsv4 ${probe}`];

function split(stdout: string): { path: string; addresses: string[] } {
  const [path = '', ...rest] = stdout.split('\n');
  return { path: path.trim(), addresses: ahostsAddresses(rest.join('\n')) };
}

describe('profiles', () => {
  it('a profile with via and dns needs no flags', async () => {
    const n = w.name('p1');
    w.writeProfile(n, `via = "${SLOW_GW}"\ndns = ["${DNS_SERVER}"]\n`);
    const probe = probeName('profile');
    const r = await w.nsroute(['exec', n, '--', ...pathAndDns(probe)]);
    expectOk(r);
    expect(split(r.stdout)).toEqual({ path: `slow ${HOST_SLOW_ADDR}`, addresses: [SLOW_ANSWER] });
    expect(await w.waitDnsQueries('slow', probe)).toBeGreaterThanOrEqual(1);
    expect(w.dnsQueries('fast', probe)).toBe(0);
  });

  it('flags override the profile', async () => {
    const n = w.name('p2');
    w.writeProfile(n, `via = "${SLOW_GW}"\ndns = ["${DNS_SERVER}"]\n`);
    // --via overrides: traffic and DNS (same server address) now go the fast way.
    const probe = probeName('override');
    const r = await w.nsroute(['exec', n, '--via', FAST_GW, '--', ...pathAndDns(probe)]);
    expectOk(r);
    expect(split(r.stdout)).toEqual({ path: `fast ${HOST_FAST_ADDR}`, addresses: [FAST_ANSWER] });
    // --dns overrides: via stays slow from the profile, the name server is the one given.
    const d = await w.nsroute(['exec', n, '--dns', SLOW_GW, '--', 'cat', '/etc/resolv.conf']);
    expectOk(d);
    const servers = d.stdout.split('\n').filter((l) => /^\s*nameserver\s/.test(l));
    expect(servers.map((l) => l.trim().split(/\s+/)[1])).toEqual([SLOW_GW]);
  });

  it('dev and subnet come from the profile', async () => {
    const n = w.name('p3');
    w.writeProfile(n, `via = "${SLOW_GW}"\ndev = "${SLOW_DEV}"\nsubnet = "10.77.3.0/30"\ndns = ["${DNS_SERVER}"]\n`);
    expectOk(await w.nsroute(['up', n]));
    try {
      const s = await statusJson(w, n);
      expect(s).toMatchObject({ gateway: SLOW_GW, dev: SLOW_DEV, subnet: '10.77.3.0/30', hostAddress: '10.77.3.1', namespaceAddress: '10.77.3.2', dns: [DNS_SERVER] });
      const r = await w.nsroute(['exec', n, '--', ...PATH4]);
      expectOk(r);
      expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  // [what, profile text, must the message name the file?]
  const broken: [string, string, boolean][] = [
    ['an unknown key', `via = "${SLOW_GW}"\ncolour = "red"\n`, true],
    ['invalid TOML', `via = "${SLOW_GW}\ndns = [\n`, true],
    ['a value of the wrong type', 'via = 42\ndns = [53]\n', false],
    ['an invalid address', `via = "10.99.2.300"\n`, false],
  ];
  for (const [what, text, namesFile] of broken) {
    it(`a profile with ${what}: exec 125, up 2, message names the file, host unchanged`, async () => {
      const n = w.name('pb');
      const file = w.writeProfile(n, text);
      const e = await w.nsroute(['exec', n, '--', 'true']);
      expectUserError(e, 125);
      if (namesFile) expect(e.stderr, show(e)).toContain(file);
      const u = await w.nsroute(['up', n]);
      expectUserError(u, 2);
      if (namesFile) expect(u.stderr, show(u)).toContain(file);
      expect(w.netnsExists(n)).toBe(false);
      expect(await w.snapshot()).toEqual(clean);
    });
  }
});
