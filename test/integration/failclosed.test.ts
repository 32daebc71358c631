// Fail closed on the routing side alone (issue 10, finding 1): whatever another tool flushes
// (the whole nft ruleset, an uplink table), a namespace's packets never reach the host's main
// table. Before the fail-closed rules, `nft flush ruleset` let 3-6 connections per flush leave
// by the fast default uplink, unmasqueraded, and `check` said "ok route".
// Probes run with `w.inNetns` (a program already inside), never through a new `nsroute exec`,
// which would repair things first. Nothing restores in the background: --no-watch.
import { describe, expect, it } from 'vitest';
import {
  expandV6,
  HOST_SLOW_ADDR,
  HOST_SLOW_ADDR6,
  SLOW_GW,
  SLOW_GW6,
  type GatewayPackets,
  type RunResult,
  type Snapshot,
  type World,
} from '../world/world.js';
import { expectOk, PATH4, PATH6, show, statusJson, useWorld, delta, NOTHING } from '../world/helpers.js';

let w: World;
let clean: Snapshot;
useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { ipv6Forwarding: true });

const SLOW4 = `slow ${HOST_SLOW_ADDR}`;
const SLOW6 = `slow6 [${expandV6(HOST_SLOW_ADDR6)}]`;


async function both(): Promise<{ fast: GatewayPackets; slow: GatewayPackets }> {
  return { fast: await w.gatewayPackets('fast'), slow: await w.gatewayPackets('slow') };
}

async function expectNothingSent(before: { fast: GatewayPackets; slow: GatewayPackets }): Promise<void> {
  const after = await both();
  expect({ fast: delta(before.fast, after.fast), slow: delta(before.slow, after.slow) }).toEqual({ fast: NOTHING, slow: NOTHING });
}

// The kernel refuses at once: "Network is unreachable" (the fail-closed rule), not a timeout
// of a SYN that left and got no answer.
function expectUnreachable(r: RunResult): void {
  expect(r.exitCode, show(r)).not.toBe(0);
  expect(r.stdout, show(r)).toBe('');
  expect(r.stderr, show(r)).toMatch(/Network is unreachable/);
}

function expectFailed(r: RunResult): void {
  expect(r.exitCode, show(r)).not.toBe(0);
  expect(r.stdout, show(r)).toBe('');
  expect(r.stderr, show(r)).toMatch(/Network is unreachable|Connection timed out/);
}

function inside(name: string, argv: readonly string[]): Promise<RunResult> {
  return w.inNetns(name, argv, { timeoutMs: 20_000 });
}

interface CheckJson {
  ok: boolean;
  leak: boolean;
  checks: { id: string; ok: boolean; leak: boolean; detail: string; marked?: boolean | null; failClosed?: boolean | null }[];
}

async function checkJson(name: string): Promise<{ code: number | null; report: CheckJson }> {
  const r = await w.nsroute(['check', name, '--json'], { timeoutMs: 30_000 });
  const report = JSON.parse(r.stdout) as CheckJson;
  return { code: r.exitCode, report, toString: () => JSON.stringify(report.checks.filter((c) => !c.ok)) } as { code: number | null; report: CheckJson };
}

async function guardRules(family: 4 | 6 = 4): Promise<string[]> {
  const r = await w.inHost(['ip', `-${family}`, 'rule', 'show']);
  expectOk(r);
  return r.stdout.split('\n').filter((l) => /^420[123]:/.test(l));
}

describe('a flushed firewall', () => {
  it('--via slow: after `nft flush ruleset` nothing leaves, check says blocked (not ok), gc restores', async () => {
    const n = w.name('fl1');
    // --dns on the slow side: the host's name server (fast side) is not reachable that way.
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', SLOW_GW, '--no-watch']));
    try {
      expect((await inside(n, PATH4)).stdout.trim()).toBe(SLOW4);
      { const c = await checkJson(n); expect(c.code, String(c)).toBe(0); }
      expectOk(await w.inHost(['nft', 'flush', 'ruleset']));
      const before = await both();
      expectUnreachable(await inside(n, PATH4));
      // More attempts fail too. The kernel rate-limits its ICMP errors per source (about two at
      // once, then one every two seconds), so later ones may time out instead: still nothing
      // reaches either gateway.
      for (let i = 0; i < 4; i++) expectFailed(await inside(n, PATH4));
      await expectNothingSent(before);

      const { code, report } = await checkJson(n);
      expect(code).toBe(4);
      const route = report.checks.find((c) => c.id === 'route')!;
      expect(route, JSON.stringify(route)).toMatchObject({ ok: false, leak: false, marked: false, failClosed: true });
      expect(report.leak, JSON.stringify(report)).toBe(false);

      expectOk(await w.nsroute(['gc']));
      expect((await inside(n, PATH4)).stdout.trim()).toBe(SLOW4);
      { const c = await checkJson(n); expect(c.code, String(c)).toBe(0); }
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('a namespace without --via beside a guarded one: not in its block (host routing), works before and after', async () => {
    const a = w.name('fl2a');
    const b = w.name('fl2b');
    expectOk(await w.nsroute(['up', a, '--via', SLOW_GW, '--no-watch']));
    expectOk(await w.nsroute(['up', b, '--no-watch']));
    try {
      const blocks = (await guardRules()).filter((l) => l.startsWith('4202:'));
      const { subnet: subA } = await statusJson(w, a);
      const { subnet: subB } = await statusJson(w, b);
      // IPv4 guards only namespaces with an uplink (rp_filter checks replies to the others
      // without a mark, plan/guard.ts): exactly A's block.
      expect(blocks, blocks.join('\n')).toEqual([`4202:\tfrom ${subA} unreachable`]);
      expect(blocks.join('\n')).not.toContain(subB);
      expect((await inside(b, PATH4)).stdout.trim()).toMatch(/^fast /);
      expect((await inside(a, PATH4)).stdout.trim()).toBe(SLOW4);
    } finally {
      expectOk(await w.nsroute(['down', a]));
      expectOk(await w.nsroute(['down', b]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('--ipv6 nat: IPv6 is stopped as well, with an uplink or without (host routing)', async () => {
    const n = w.name('fl3');
    const h = w.name('fl3h');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--ipv6', 'nat', '--via6', SLOW_GW6, '--no-watch']));
    expectOk(await w.nsroute(['up', h, '--ipv6', 'nat', '--no-watch']));
    try {
      expect((await inside(n, PATH6)).stdout.trim()).toBe(SLOW6);
      // The host mark lets a namespace without --via past nsroute's ULA block.
      expect((await inside(h, PATH6)).stdout.trim()).toMatch(/^fast6 /);
      expectOk(await w.inHost(['nft', 'flush', 'ruleset']));
      const before = await both();
      expectUnreachable(await inside(n, PATH6));
      expectUnreachable(await inside(n, PATH4));
      expectUnreachable(await inside(h, PATH6));
      await expectNothingSent(before);
    } finally {
      expectOk(await w.nsroute(['down', n]));
      expectOk(await w.nsroute(['down', h]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('other objects of the path removed by hand', () => {
  it("the uplink's table flushed: marked traffic finds no route, never the main table", async () => {
    const n = w.name('fl4');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--no-watch']));
    try {
      const { table } = await statusJson(w, n);
      expectOk(await w.inHost(['ip', 'route', 'flush', 'table', String(table)]));
      const before = await both();
      expectUnreachable(await inside(n, PATH4));
      await expectNothingSent(before);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('the fail-closed rule deleted: check fails without a leak, the next command puts it back', async () => {
    const n = w.name('fl5');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--dns', SLOW_GW, '--no-watch']));
    try {
      const block = (await guardRules()).find((l) => l.startsWith('4202:'));
      expect(block, (await guardRules()).join('\n')).toMatch(/^4202:\s+from (\S+) unreachable$/);
      const from = /from (\S+)/.exec(block!)![1]!;
      expectOk(await w.inHost(['ip', 'rule', 'del', 'pref', '4202', 'from', from, 'unreachable']));
      const { code, report } = await checkJson(n);
      const route = report.checks.find((c) => c.id === 'route')!;
      expect(code).toBe(4);
      expect(route, JSON.stringify(route)).toMatchObject({ ok: false, leak: false, marked: true, failClosed: false });
      expect(route.detail).toMatch(/fail-closed rule .* is missing: if the firewall were flushed, traffic would leave dev upf/);
      expectOk(await w.nsroute(['up', n, '--no-watch']));
      expect(await guardRules()).toContain(block);
      { const c = await checkJson(n); expect(c.code, String(c)).toBe(0); }
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  it('the fail-closed rule deleted right after up: the watcher puts it back', async () => {
    const n = w.name('fl6');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW]));
    try {
      const block = (await guardRules()).find((l) => l.startsWith('4202:'));
      expect(block, (await guardRules()).join('\n')).toMatch(/^4202:\s+from (\S+) unreachable$/);
      const from = /from (\S+)/.exec(block!)![1]!;
      // Perhaps while the watcher is still starting: it looks once when its monitors run.
      expectOk(await w.inHost(['ip', 'rule', 'del', 'pref', '4202', 'from', from, 'unreachable']));
      await expect.poll(guardRules, { timeout: 30_000, interval: 100 }).toContain(block);
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});

describe('rules grow with blocks, not namespaces', () => {
  it('four namespaces side by side share one aggregated block rule; all gone after down', async () => {
    const names = [1, 2, 3, 4].map((i) => w.name(`ag${i}`));
    for (const n of names) expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--no-watch']));
    try {
      const rules = await guardRules();
      // One /28 covers four /30s allocated first-free (the world's fake host uses none of them).
      expect(rules.filter((l) => l.startsWith('4202:')), rules.join('\n')).toHaveLength(1);
      expect(rules.filter((l) => l.startsWith('4201:')), rules.join('\n')).toHaveLength(2);
      expect(rules.filter((l) => l.startsWith('4203:')), rules.join('\n')).toHaveLength(1);
      for (const n of names) expect((await inside(n, PATH4)).stdout.trim()).toBe(SLOW4);
    } finally {
      for (const n of names) expectOk(await w.nsroute(['down', n]));
    }
    expect(await guardRules()).toEqual([]);
    expect(await w.snapshot()).toEqual(clean);
  });

  it("gc removes a leftover guard rule, and leaves another tool's rule at the same priority alone", async () => {
    expectOk(await w.inHost(['ip', 'rule', 'add', 'pref', '4202', 'from', '10.231.200.0/30', 'unreachable']));
    expectOk(await w.inHost(['ip', 'rule', 'add', 'pref', '4202', 'from', '10.231.201.0/30', 'lookup', 'main']));
    try {
      const r = await w.nsroute(['gc', '--json']);
      expectOk(r);
      expect(r.stdout).toContain('pref 4202 from 10.231.200.0/30 unreachable');
      const rules = await guardRules();
      expect(rules.join('\n')).not.toContain('10.231.200.0/30');
      expect(rules.join('\n')).toContain('10.231.201.0/30');
    } finally {
      await w.inHost(['ip', 'rule', 'del', 'pref', '4202', 'from', '10.231.201.0/30', 'lookup', 'main']);
    }
    expect(await w.snapshot()).toEqual(clean);
  });
});
