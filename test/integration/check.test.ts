// `nsroute check NAME`: proves from inside the namespace which route, source address and DNS
// servers its traffic uses, and fails (exit 4) with the reason when something inside the fake
// host is broken behind nsroute's back: the nft table deleted, the uplink route gone, the
// uplink link down, a bind-mounted file replaced, a name server that does not answer.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DNS_SERVER, FAST_ANSWER, FAST_GW, HOST_FAST_ADDR, HOST_SLOW_ADDR, HOST_SLOW_ADDR6, SLOW_DEV, SLOW_GW, SLOW_GW6, type RunResult, type Snapshot, type World } from '../world/world.js';
import { expectOk, show, statusJson, useWorld } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)));

const SLOW = ['--via', SLOW_GW, '--dns', DNS_SERVER];
const CHECK_FAILED = 4;
const NOT_UP = 3;

interface Check {
  id: 'route' | 'nat' | 'dns' | 'nsswitch' | 'ipv6' | 'files';
  ok: boolean;
  leak: boolean;
  detail: string;
  [key: string]: unknown;
}

interface Report {
  name: string;
  up: boolean;
  ok: boolean;
  leak: boolean;
  checks: Check[];
}

async function check(name: string, extra: string[] = []): Promise<{ r: RunResult; report: Report }> {
  const r = await w.nsroute(['check', name, '--json', ...extra]);
  let report: Report;
  try {
    report = JSON.parse(r.stdout) as Report;
  } catch {
    throw new Error(`check --json printed no JSON\n${show(r)}`);
  }
  return { r, report };
}

function byId(report: Report, id: Check['id']): Check {
  const c = report.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no ${id} check in ${JSON.stringify(report)}`);
  return c;
}

function failing(report: Report): string[] {
  return report.checks.filter((c) => !c.ok).map((c) => c.id);
}

async function inHostOk(argv: string[]): Promise<void> {
  const r = await w.inHost(argv);
  expect(r.exitCode, `${argv.join(' ')}\n${show(r)}`).toBe(0);
}

async function down(name: string): Promise<void> {
  expectOk(await w.nsroute(['down', name]));
  expect(await w.snapshot()).toEqual(clean);
}

describe('check of a healthy namespace', () => {
  it('via the slow uplink: route, source, DNS, IPv6 and files all prove out', async () => {
    const n = w.name('c1');
    expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
    try {
      const { r, report } = await check(n);
      expect(r.exitCode, show(r)).toBe(0);
      expect(report.name).toBe(n);
      expect(report.ok, show(r)).toBe(true);
      expect(report.leak).toBe(false);
      expect(report.checks.map((c) => c.id)).toEqual(['route', 'nat', 'dns', 'nsswitch', 'ipv6', 'files', 'firewall']);
      expect(report.checks.every((c) => c.ok)).toBe(true);
      const route = byId(report, 'route');
      expect(route.host).toEqual({ dev: SLOW_DEV, gateway: SLOW_GW, source: HOST_SLOW_ADDR, table: expect.any(Number) });
      expect(route.inside).toEqual({ dev: 'eth0', gateway: expect.any(String), source: expect.any(String) });
      expect(route.killSwitch).toEqual({ table: (await statusJson(w, n)).table, uplinkRoute: true, fallback: true, rule: true });
      expect(route.detail).toBe(`via ${SLOW_GW} dev ${SLOW_DEV}, source ${HOST_SLOW_ADDR}`);
      expect(byId(report, 'dns').servers).toEqual([{ server: DNS_SERVER, answered: true, result: expect.any(String) }]);
      expect(byId(report, 'ipv6').mode).toBe('off');

      const text = await w.nsroute(['check', n]);
      expect(text.exitCode, show(text)).toBe(0);
      const lines = text.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe(`ok   route: via ${SLOW_GW} dev ${SLOW_DEV}, source ${HOST_SLOW_ADDR}`);
      expect(lines.slice(0, 7).every((l) => l.startsWith('ok   '))).toBe(true);
      expect(lines[7]).toBe(`${n}: all 7 checks passed`);
    } finally {
      await down(n);
    }
  });

  it('with the host routing: the far side sees the fast uplink address', async () => {
    const n = w.name('c2');
    expectOk(await w.nsroute(['up', n, '--no-watch']));
    try {
      const { r, report } = await check(n, ['--name', 'x.probe.test']);
      expect(r.exitCode, show(r)).toBe(0);
      const route = byId(report, 'route');
      expect(route.host).toMatchObject({ dev: 'upf', gateway: FAST_GW, source: HOST_FAST_ADDR });
      expect(route.killSwitch).toBeNull();
      // The world's resolv.conf names the fast gateway, whose dnsmasq answers *.probe.test.
      expect(byId(report, 'dns').servers).toEqual([{ server: FAST_GW, answered: true, result: 'answer', addresses: [FAST_ANSWER] }]);
      expect(byId(report, 'dns').detail).toBe(`${FAST_GW} answered (${FAST_ANSWER})`);
      expect(await w.waitDnsQueries('fast', 'x.probe.test')).toBeGreaterThanOrEqual(1);
    } finally {
      await down(n);
    }
  });

  it('with --ipv6 nat: IPv6 leaves by the uplink too', async () => {
    const n = w.name('c8');
    expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW, '--ipv6', 'nat', '--via6', SLOW_GW6]));
    try {
      const { r, report } = await check(n);
      expect(r.exitCode, show(r)).toBe(0);
      const ipv6 = byId(report, 'ipv6');
      expect(ipv6).toMatchObject({ ok: true, mode: 'nat', host: { dev: SLOW_DEV, gateway: SLOW_GW6, error: null } });
      expect(ipv6.detail).toBe(`IPv6 leaves via ${SLOW_GW6} dev ${SLOW_DEV} (nat)`);
    } finally {
      await down(n);
    }
  });

  it('of a NAME that is not up exits 3 with the fix', async () => {
    const n = w.name('never');
    const text = await w.nsroute(['check', n]);
    expect(text.exitCode, show(text)).toBe(NOT_UP);
    expect(text.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(new RegExp(`^nsroute: ${n} is not up; .*nsroute up ${n}`))]);
    const json = await w.nsroute(['check', n, '--json']);
    expect(json.exitCode).toBe(NOT_UP);
    expect(JSON.parse(json.stdout)).toEqual({ name: n, up: false, ok: false, checks: [] });
    expect((await w.nsroute(['check', 'bad/name'])).exitCode).toBe(2);
  });
});

describe('check finds what was broken behind nsroute', () => {
  it('the nft table deleted: nat fails; up or gc restores it', async () => {
    const n = w.name('c3');
    expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
    try {
      await inHostOk(['nft', 'delete', 'table', 'inet', 'nsroute']);
      const { r, report } = await check(n);
      expect(r.exitCode, show(r)).toBe(CHECK_FAILED);
      // Unmarked, the packets meet the fail-closed rule: the route is blocked, the DNS query
      // gets no answer, and nothing leaks.
      expect(failing(report)).toEqual(['route', 'nat', 'dns']);
      expect(byId(report, 'dns').servers).toEqual([{ server: DNS_SERVER, answered: false, result: expect.any(String) }]);
      const route = byId(report, 'route');
      expect(route).toMatchObject({ ok: false, leak: false, marked: false, failClosed: true });
      const nat = byId(report, 'nat');
      expect(nat.table).toBe(false);
      expect(nat.leak).toBe(false);
      expect(nat.detail).toContain('flushed or reloaded by another tool; traffic is blocked until then, nothing leaks');
      const text = await w.nsroute(['check', n]);
      expect(text.exitCode).toBe(CHECK_FAILED);
      expect(text.stdout).toMatch(/^FAIL nat: /m);
      expect(text.stdout.trimEnd().split('\n').at(-1)).toBe(`${n}: 3 of 7 checks failed (route, nat, dns); nothing leaks`);

      // Another command on NAME (here `up`, joining the running namespace) puts it back...
      expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
      const repaired = await check(n);
      expect(repaired.r.exitCode, show(repaired.r)).toBe(0);
      // ...and so does gc.
      await inHostOk(['nft', 'delete', 'table', 'inet', 'nsroute']);
      expect((await check(n)).r.exitCode).toBe(CHECK_FAILED);
      expectOk(await w.nsroute(['gc']));
      const after = await check(n);
      expect(after.r.exitCode, show(after.r)).toBe(0);
    } finally {
      await down(n);
    }
  });

  it('the uplink route deleted: route fails, blocked by the kill switch', async () => {
    const n = w.name('c4');
    expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
    const table = String((await statusJson(w, n)).table);
    try {
      await inHostOk(['ip', 'route', 'del', 'default', 'via', SLOW_GW, 'table', table]);
      const { r, report } = await check(n);
      expect(r.exitCode, show(r)).toBe(CHECK_FAILED);
      // Blocked, so the DNS server behind the uplink cannot answer either.
      expect(failing(report)).toEqual(['route', 'dns']);
      const route = byId(report, 'route');
      expect(route.leak).toBe(false);
      expect(route.detail).toMatch(new RegExp(`^uplink ${SLOW_DEV} has no route in table ${table}: traffic is blocked \\(kill switch\\), nothing leaks`));
      expect(route.killSwitch).toEqual({ table: Number(table), uplinkRoute: false, fallback: true, rule: true });
      expect(report.leak).toBe(false);
      // `up` of the running NAME puts the route back; the check passes again.
      expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
      const repaired = await check(n);
      expect(repaired.r.exitCode, show(repaired.r)).toBe(0);
    } finally {
      await down(n);
    }
  });

  it('the uplink link down: blocked by the kill switch; after it comes back the route is missing until the next up', async () => {
    const n = w.name('c5');
    expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
    const table = String((await statusJson(w, n)).table);
    try {
      await inHostOk(['ip', 'link', 'set', SLOW_DEV, 'down']);
      const downReport = await check(n);
      expect(downReport.r.exitCode, show(downReport.r)).toBe(CHECK_FAILED);
      expect(failing(downReport.report)).toContain('route');
      expect(byId(downReport.report, 'route').detail).toContain('kill switch');
      expect(byId(downReport.report, 'route').leak).toBe(false);
      // The DNS server sits behind the slow uplink: it cannot answer either.
      expect(byId(downReport.report, 'dns').ok).toBe(false);

      await inHostOk(['ip', 'link', 'set', SLOW_DEV, 'up']);
      // The kernel dropped the link's IPv6 address with it (keep_addr_on_down=0): the world's
      // own address, put back so the fake host is as it was.
      await inHostOk(['ip', 'addr', 'add', `${HOST_SLOW_ADDR6}/64`, 'dev', SLOW_DEV, 'nodad']);
      const upReport = await check(n);
      // Nothing watches a namespace made by `up` (no exec runs, no `nsroute watch`): the
      // uplink's route stays gone when the link returns, and traffic stays blocked.
      expect(upReport.r.exitCode, show(upReport.r)).toBe(CHECK_FAILED);
      expect(byId(upReport.report, 'route').killSwitch).toEqual({ table: Number(table), uplinkRoute: false, fallback: true, rule: true });
      expect(byId(upReport.report, 'route').detail).toContain('kill switch');
      // The next command on NAME repairs it.
      expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
      const fixed = await check(n);
      expect(fixed.r.exitCode, show(fixed.r)).toBe(0);
    } finally {
      await down(n);
    }
  });

  it('resolv.conf in /etc/netns/NAME replaced by another tool: files fails', async () => {
    const n = w.name('c6');
    expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
    const path = join('/etc/netns', n, 'resolv.conf');
    const original = readFileSync(path, 'utf8');
    try {
      writeFileSync(path, `nameserver ${DNS_SERVER}\n`);
      const { r, report } = await check(n);
      expect(r.exitCode, show(r)).toBe(CHECK_FAILED);
      expect(failing(report)).toEqual(['files']);
      const files = byId(report, 'files');
      expect(files.files).toContainEqual({ file: 'resolv.conf', present: true, ours: false, mounted: true });
      expect(files.detail).toContain(`/etc/netns/${n}/resolv.conf was not written by nsroute`);

      // nsroute's own text with another server in it: files cannot tell (it is nsroute's
      // header, and what the namespace sees), but dns sees the server, as a leak.
      writeFileSync(path, original.replace(`nameserver ${DNS_SERVER}`, `nameserver ${FAST_GW}`));
      const leak = await check(n);
      expect(leak.r.exitCode).toBe(CHECK_FAILED);
      expect(failing(leak.report)).toEqual(['dns']);
      expect(byId(leak.report, 'dns').leak).toBe(true);
      expect(byId(leak.report, 'dns').nameservers).toEqual([FAST_GW]);
    } finally {
      writeFileSync(path, original);
      await down(n);
    }
  });

  it('an IPv6 address given to the namespace with IPv6 off: ipv6 fails as a leak', async () => {
    const n = w.name('c9');
    expectOk(await w.nsroute(['up', n, '--no-watch', ...SLOW]));
    try {
      await inHostOk(['ip', '-n', n, 'addr', 'add', '2001:db8:1::5/64', 'dev', 'eth0', 'nodad']);
      const { r, report } = await check(n);
      expect(r.exitCode, show(r)).toBe(CHECK_FAILED);
      expect(failing(report)).toEqual(['ipv6']);
      const ipv6 = byId(report, 'ipv6');
      expect(ipv6.leak).toBe(true);
      expect(ipv6.addresses).toEqual(['2001:db8:1::5']);
      expect(report.leak).toBe(true);
    } finally {
      await down(n);
    }
  });

  it('a name server nobody serves: dns fails for that server', async () => {
    const n = w.name('c7');
    expectOk(await w.nsroute(['up', n, '--no-watch', '--via', SLOW_GW, '--dns', DNS_SERVER, '--dns', '192.0.2.99']));
    try {
      const { r, report } = await check(n);
      expect(r.exitCode, show(r)).toBe(CHECK_FAILED);
      expect(failing(report)).toEqual(['dns']);
      const dns = byId(report, 'dns');
      expect(dns.servers).toEqual([
        { server: DNS_SERVER, answered: true, result: expect.any(String) },
        { server: '192.0.2.99', answered: false, result: 'ETIMEOUT' },
      ]);
      expect(dns.detail).toContain('192.0.2.99 (ETIMEOUT) did not answer');
      expect(dns.leak).toBe(false);
    } finally {
      await down(n);
    }
  });
});
