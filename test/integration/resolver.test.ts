// DNS must not escape through the host's resolver daemons, and the namespace's files must stay
// in place while a command runs. These need a host whose /etc and /run look like a
// systemd-resolved machine, which the real one is not: each test runs nsroute (in the fake
// host's network namespace, as always) inside a private mount namespace of its own, with an
// overlay over /etc and a tmpfs over /run/systemd. Nothing of it reaches the real machine.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, FAST_ANSWER, NSROUTE_JS, PROBE_DOMAIN, type Snapshot, type World } from '../world/world.js';
import { show, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const NSROUTE = `'${process.execPath}' '${NSROUTE_JS}'`;

// A shell script run in a private mount namespace: /etc becomes an overlay (writes go to a
// scratch dir), /run/systemd a tmpfs with a systemd-resolved look-alike: the stub's
// resolv.conf, a stand-in for its varlink socket, and /etc/resolv.conf linked to the stub.
function resolvedHost(dir: string, body: string): string[] {
  for (const d of ['up', 'work']) mkdirSync(join(dir, d), { recursive: true });
  const setup = [
    'set -e',
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/up,workdir=${dir}/work /etc`,
    'mount -t tmpfs nsroute-test /run/systemd',
    'mkdir -p /run/systemd/resolve',
    "printf 'nameserver 127.0.0.53\\noptions edns0 trust-ad\\n' > /run/systemd/resolve/stub-resolv.conf",
    ': > /run/systemd/resolve/io.systemd.Resolve',
    'ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf',
    "printf 'passwd: files\\nhosts: files resolve [!UNAVAIL=return] dns myhostname\\n' > /etc/nsswitch.conf",
    'set +e',
  ];
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', [...setup, body].join('\n')];
}

describe('a systemd-resolved host (stub resolv.conf, resolve in nsswitch, its socket under /run)', () => {
  it('the command sees only the namespace resolv.conf and nsswitch.conf, and not the resolved socket', async () => {
    const n = w.name('rs1');
    const probe = `rs1-${process.pid}.${PROBE_DOMAIN}`;
    const inside = [
      'cat /etc/resolv.conf; echo ---',
      'grep ^hosts: /etc/nsswitch.conf; echo ---',
      'ls -A /run/systemd/resolve; echo ---',
      `getent ahostsv4 ${probe} | head -n1`,
    ].join('; ');
    const r = await w.inHost(resolvedHost(join(w.dir, 'rs1'), `${NSROUTE} exec ${n} --dns ${DNS_SERVER} -- sh -c '${inside}'`), { timeoutMs: 20_000 });
    expect(r.exitCode, show(r)).toBe(0);
    const [resolv, hosts, listing, answer] = r.stdout.split('---\n').map((s) => s.trim());
    expect(resolv).toMatch(new RegExp(`^# Written by nsroute for namespace ${n}`));
    expect(resolv).toContain(`nameserver ${DNS_SERVER}`);
    expect(resolv).not.toContain('127.0.0.53');
    expect(hosts).toMatch(/^hosts:\s+files dns myhostname$/);
    // resolved's directory is an empty tmpfs except for the namespace's copy of resolv.conf.
    expect(listing?.split('\n')).toEqual(['stub-resolv.conf']);
    expect(answer).toMatch(new RegExp(`^${FAST_ANSWER.replace(/\./g, '\\.')}\\s`));
    expect(w.dnsQueries('fast', probe)).toBeGreaterThanOrEqual(1);
    expect(existsSync('/run/systemd/resolve/io.systemd.Resolve')).toBe(false); // the real host was never touched
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('the host replaces /etc/resolv.conf while a command runs', () => {
  it('the command keeps seeing the namespace file', async () => {
    const n = w.name('rs2');
    const dir = join(w.dir, 'rs2');
    const out1 = join(dir, 'out1');
    const out2 = join(dir, 'out2');
    const ready = join(dir, 'ready');
    const go = join(dir, 'go');
    const command = `cat /etc/resolv.conf > ${out1}; touch ${ready}; while [ ! -e ${go} ]; do sleep 0.05; done; cat /etc/resolv.conf > ${out2}`;
    const body = [
      // A regular-file resolv.conf on this host, as NetworkManager or dhclient manage it.
      'rm -f /etc/resolv.conf; printf "nameserver 192.0.2.1\\n" > /etc/resolv.conf',
      `${NSROUTE} exec ${n} --dns ${DNS_SERVER} -- sh -c '${command}' & p=$!`,
      `while [ ! -e ${ready} ]; do sleep 0.05; done`,
      // What those tools do: write a new file, rename it over the old one.
      'printf "nameserver 198.51.100.1\\n" > /etc/resolv.conf.new && mv /etc/resolv.conf.new /etc/resolv.conf',
      'sleep 0.5',
      `touch ${go}`,
      'wait $p',
    ].join('\n');
    const r = await w.inHost(resolvedHost(dir, body), { timeoutMs: 20_000 });
    expect(r.exitCode, show(r)).toBe(0);
    const before = readFileSync(out1, 'utf8');
    expect(before).toContain(`nameserver ${DNS_SERVER}`);
    expect(readFileSync(out2, 'utf8')).toBe(before);
    expect(await w.snapshot()).toEqual(clean);
  });
});
