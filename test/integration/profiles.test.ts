// Profiles: $NSROUTE_CONFIG_DIR/NAME.toml carries the route options; flags override it;
// a broken profile is a clear error naming the file, with the host unchanged.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
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

// Whoever can write a profile chooses root's routing, and a profile that is there but cannot
// be used must never mean "no profile" (the namespace would come up on the host's routes).
// Each: up 2, exec 125 without running the command, enable 2, one line naming the file, host
// unchanged. `make` prepares the profile and returns an undo for what it changed outside it.
describe('profiles that must be refused', () => {
  const good = `via = "${SLOW_GW}"\n`;
  const refused: [string, (file: string) => (() => void) | void, RegExp][] = [
    ['group-writable', (f) => (writeFileSync(f, good), chmodSync(f, 0o664)), /writable by its group/],
    ['world-writable', (f) => (writeFileSync(f, good), chmodSync(f, 0o646)), /writable by everyone/],
    ['not owned by root', (f) => (writeFileSync(f, good), chownSync(f, 65534, 65534)), /owned by uid 65534/],
    ['a dangling symlink', (f) => symlinkSync(join(w.dir, 'no-such-profile.toml'), f), /symlink to a file that does not exist/],
    ['a FIFO', (f) => void spawnSync('mkfifo', ['-m', '0644', f]), /not a regular file \(a FIFO\)/],
    ['a symlink to /dev/zero', (f) => symlinkSync('/dev/zero', f), /not a regular file \(a character device\)/],
    ['larger than 64 KiB', (f) => writeFileSync(f, `via = "${SLOW_GW}"\n${'# padding\n'.repeat(7000)}`), /larger than 65536 bytes/],
    ['a symlink to a world-writable file', (f) => {
      const target = join(w.dir, `${basename(f)}.target`);
      writeFileSync(target, good);
      chmodSync(target, 0o666);
      symlinkSync(target, f);
      return () => rmSync(target, { force: true });
    }, /writable by everyone/],
    ['in a world-writable config dir', (f) => {
      writeFileSync(f, good);
      chmodSync(w.configDir, 0o777);
      return () => chmodSync(w.configDir, 0o755);
    }, /directory .* writable by everyone/],
    ['missing, in a config dir not owned by root', () => {
      chownSync(w.configDir, 65534, 65534);
      return () => chownSync(w.configDir, 0, 0);
    }, /directory .* owned by uid 65534/],
  ];
  for (const [what, make, says] of refused) {
    it(`${what}: up 2, exec 125, enable 2, host unchanged`, async () => {
      const n = w.name('pr');
      const file = join(w.configDir, `${n}.toml`);
      const undo = make(file);
      const units = join(w.dir, 'units-refused');
      mkdirSync(units, { recursive: true });
      try {
        // The FIFO and /dev/zero used to hang or eat memory: bounded here so a regression fails.
        const u = await w.nsroute(['up', n], { timeoutMs: 20_000 });
        expectUserError(u, 2);
        expect(u.stderr, show(u)).toContain(`${n}.toml`);
        expect(u.stderr, show(u)).toMatch(says);
        const e = await w.nsroute(['exec', n, '--', 'echo', 'ran'], { timeoutMs: 20_000 });
        expectUserError(e, 125);
        expect(e.stdout).toBe('');
        expect(e.stderr, show(e)).toMatch(says);
        const en = await w.nsroute(['enable', n], { env: { NSROUTE_UNIT_DIR: units }, timeoutMs: 20_000 });
        expectUserError(en, 2);
        expect(en.stderr, show(en)).toMatch(says);
        expect(readdirSync(units)).toEqual([]);
      } finally {
        if (w.netnsExists(n)) await w.nsroute(['down', n]);
        undo?.();
        rmSync(file, { force: true });
        rmSync(units, { recursive: true, force: true });
      }
      expect(w.netnsExists(n)).toBe(false);
      expect(await w.snapshot()).toEqual(clean);
    });
  }

  it('a symlink to a root-owned file that only root can write is followed', async () => {
    const n = w.name('pl');
    const target = join(w.dir, `${n}.real.toml`);
    writeFileSync(target, good, { mode: 0o644 });
    chmodSync(target, 0o644);
    const file = join(w.configDir, `${n}.toml`);
    symlinkSync(target, file);
    try {
      const r = await w.nsroute(['exec', n, '--', ...PATH4]);
      expectOk(r);
      expect(r.stdout.trim()).toBe(`slow ${HOST_SLOW_ADDR}`);
    } finally {
      rmSync(file, { force: true });
      rmSync(target, { force: true });
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});
