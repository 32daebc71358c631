// --mode replies (seed 003): the fake host's default route goes fast; a server on its slow
// address is reached from beyond the slow gateway (a client inside the slow gateway namespace,
// from its 198.18.0.10, which is not on the slow link). Without the policy the reply leaves by
// the default route (fast) and the connection fails; with `up --mode replies --dev ups --via
// 10.99.2.1` it works, also on a strict-rp_filter host. Same guarantees as namespaces: exact
// teardown, gc after a SIGKILL at any step, the watcher after `nft flush ruleset`.
import { describe, expect, it, beforeAll } from 'vitest';
import { FAST_GW, HOST_FAST_ADDR, HOST_SLOW_ADDR, PATH_SERVER, SLOW_DEV, SLOW_GW, waitFor, type RunResult, type Snapshot, type Spawned, type World } from '../world/world.js';
import { expectOk, expectUserError, PATH4, show, statusJson, useWorld } from '../world/helpers.js';

const PORT = 7100;
const REPLY = 'replied';
const UP = ['--mode', 'replies', '--dev', SLOW_DEV, '--via', SLOW_GW];
// uplink-route, replies-mark
const STEPS = 2;

// Counts, in each gateway namespace (never the fake host), the server's packets that arrive on
// its lan0: which way the fake host's replies went.
const COUNT_TABLE = 'repliescount';
const COUNT_RULESET = `table inet ${COUNT_TABLE} {
	counter replies {}
	chain prerouting {
		type filter hook prerouting priority -400; policy accept;
		iifname "lan0" tcp sport ${PORT} counter name "replies"
	}
}
`;

async function replyCounts(w: World): Promise<{ fast: number; slow: number }> {
  const read = async (ns: string) => {
    const r = await w.inNetns(ns, ['nft', '-j', 'list', 'counter', 'inet', COUNT_TABLE, 'replies']);
    expect(r.exitCode, show(r)).toBe(0);
    const list = (JSON.parse(r.stdout) as { nftables: { counter?: { packets: number } }[] }).nftables;
    return list.find((e) => e.counter)?.counter?.packets ?? 0;
  };
  return { fast: await read(w.gwFast), slow: await read(w.gwSlow) };
}

// The server on the fake host's slow address, and the counters; once per world.
function useServer(get: () => World): void {
  let server: Spawned | undefined;
  beforeAll(async () => {
    const w = get();
    for (const ns of [w.gwFast, w.gwSlow]) expectOk(await w.inNetns(ns, ['nft', '-f', '-'], { input: COUNT_RULESET }));
    // The slow gateway asks for the fake host's address with its own link address (as a router
    // forwarding a client's packet does), not with the client's 198.18.0.10, whose ARP request
    // strict rp_filter would ignore: ARP carries no mark.
    expectOk(await w.inNetns(w.gwSlow, ['sysctl', '-qw', 'net.ipv4.conf.lan0.arp_announce=2']));
    server = w.spawnIn(w.host, ['socat', `TCP4-LISTEN:${PORT},bind=${HOST_SLOW_ADDR},reuseaddr,fork`, `SYSTEM:echo ${REPLY}`], { timeoutMs: 3_600_000 });
    await waitFor(async () => (await w.inHost(['ss', '-Hltn', `sport = :${PORT}`])).stdout.includes(`${HOST_SLOW_ADDR}:${PORT}`), 'the server to listen');
    void server;
  });
}

// A client inside the slow gateway, from its 198.18.0.10 (beyond the slow link for the fake host).
function connectFromSlow(w: World): Promise<RunResult> {
  return w.inNetns(w.gwSlow, ['socat', '-T20', '-t20', '-', `TCP4:${HOST_SLOW_ADDR}:${PORT},bind=${PATH_SERVER},connect-timeout=4`]);
}

async function expectConnects(w: World): Promise<void> {
  const before = await replyCounts(w);
  const r = await connectFromSlow(w);
  expect(r.exitCode, show(r)).toBe(0);
  expect(r.stdout.trim()).toBe(REPLY);
  // (The fast count is not compared: the server still retransmits SYN-ACKs of the connections
  // that failed before, which leave by fast as they did then.)
  expect((await replyCounts(w)).slow).toBeGreaterThan(before.slow);
}

async function expectFails(w: World): Promise<RunResult> {
  const r = await connectFromSlow(w);
  expect(r.exitCode, show(r)).not.toBe(0);
  expect(r.stdout.trim()).toBe('');
  return r;
}

describe('replies mode: the host answers by the way a connection came', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)));
  useServer(() => w);

  it('without the policy the reply leaves by the default route (fast) and the connection fails', async () => {
    const before = await replyCounts(w);
    await expectFails(w);
    const after = await replyCounts(w);
    expect(after.fast, 'SYN-ACKs went to the fast gateway').toBeGreaterThan(before.fast);
    expect(after.slow).toBe(before.slow);
  });

  it('up --mode replies: the connection works, replies leave by slow; the host itself still goes fast; status, list, check', async () => {
    const name = w.name('rep');
    const r = await w.nsroute(['up', name, ...UP, '--json']);
    expectOk(r);
    const up = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(up).toMatchObject({ name, mode: 'replies', persistent: true, created: true, gateway: SLOW_GW, dev: SLOW_DEV, hostInterface: null });
    expect(up.replies).toMatchObject({ dev: SLOW_DEV, via: SLOW_GW });
    await expectConnects(w);
    expect(await w.hostPath()).toBe(`fast ${HOST_FAST_ADDR}`);
    const list = JSON.parse((await w.nsroute(['list', '--json'])).stdout) as { name: string; mode: string }[];
    expect(list.find((s) => s.name === name)?.mode).toBe('replies');
    const text = await w.nsroute(['status', name]);
    expectOk(text);
    expect(text.stdout).toContain(`connections arriving on ${SLOW_DEV}`);
    const check = await w.nsroute(['check', name, '--json']);
    expect(check.exitCode, show(check)).toBe(0);
    expect((JSON.parse(check.stdout) as { ok: boolean }).ok).toBe(true);
    // up again with the same settings keeps it; with others is refused.
    expectOk(await w.nsroute(['up', name, ...UP]));
    expectUserError(await w.nsroute(['up', name, '--mode', 'replies', '--dev', SLOW_DEV, '--via', '10.99.2.9']), 2);
  });

  it('`nft flush ruleset` and a deleted rule: the watcher puts them back; check says so meanwhile', async () => {
    const name = w.name('rep');
    expectOk(await w.inHost(['nft', 'flush', 'ruleset']));
    await waitFor(async () => (await w.nsroute(['check', name])).exitCode === 0, 'the watcher to restore the nft table');
    await expectConnects(w);
    const rules = JSON.parse((await w.inHost(['ip', '-j', 'rule', 'show'])).stdout) as { priority: number; fwmark?: string; table?: string }[];
    const ours = rules.find((r) => r.priority === 4200 && r.fwmark);
    expect(ours, JSON.stringify(rules)).toBeDefined();
    expectOk(await w.inHost(['ip', 'rule', 'del', 'pref', '4200', 'fwmark', ours!.fwmark!, 'lookup', String(ours!.table)]));
    await waitFor(async () => (await w.nsroute(['check', name])).exitCode === 0, 'the watcher to restore the rule');
    await expectConnects(w);
  });

  it('exec and shell into a replies NAME are refused: one line, 125, nothing changed', async () => {
    const name = w.name('rep');
    const before = await w.snapshot();
    expectUserError(await w.nsroute(['exec', name, '--', 'true']), 125);
    expectUserError(await w.nsroute(['exec', w.name('rx'), ...UP, '--', 'true']), 125);
    expectUserError(await w.nsroute(['shell', name]), 125);
    expect(await w.snapshot()).toEqual(before);
  });

  it('down: the host is exactly as before, and the connection fails again', async () => {
    expectOk(await w.nsroute(['down', w.name('rep')]));
    expect(await w.snapshot()).toEqual(clean);
    await expectFails(w);
  });

  it('a profile with mode = "replies" works the same (as the unit of `enable` brings it up at boot)', async () => {
    const name = w.name('prof');
    w.writeProfile(name, `mode = "replies"\ndev = "${SLOW_DEV}"\nvia = "${SLOW_GW}"\n`);
    expectOk(await w.nsroute(['up', name, '--require-profile', '--no-watch']));
    await expectConnects(w);
    expectOk(await w.nsroute(['down', name]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('shares the uplink table and mark with a namespace via the same gateway: either goes without the other losing anything', async () => {
    const ns = w.name('nat');
    const rep = w.name('rsh');
    const nsPath = async () => (await w.nsroute(['exec', ns, '--', ...PATH4])).stdout.trim();
    expectOk(await w.nsroute(['up', ns, '--via', SLOW_GW, '--dev', SLOW_DEV, '--no-watch']));
    const withNs = await w.snapshot();
    expectOk(await w.nsroute(['up', rep, ...UP, '--no-watch']));
    expect((await statusJson(w, rep)).table).toBe((await statusJson(w, ns)).table);
    await expectConnects(w);
    expect(await nsPath()).toBe(`slow ${HOST_SLOW_ADDR}`);
    expectOk(await w.nsroute(['down', rep]));
    expect(await w.snapshot()).toEqual(withNs);
    expect(await nsPath()).toBe(`slow ${HOST_SLOW_ADDR}`);
    expectOk(await w.nsroute(['up', rep, ...UP, '--no-watch']));
    expectOk(await w.nsroute(['down', ns]));
    await expectConnects(w);
    expectOk(await w.nsroute(['down', rep]));
    expect(await w.snapshot()).toEqual(clean);
  });

  it('bad input: one line, exit 2, nothing changed', async () => {
    const name = w.name('bad');
    const cases: string[][] = [
      ['--mode', 'replies', '--via', SLOW_GW], // no --dev
      ['--mode', 'replies', '--dev', SLOW_DEV], // no --via
      ['--mode', 'replies', '--dev', SLOW_DEV, '--via', FAST_GW], // gateway not on the link
      ['--mode', 'replies', '--dev', 'nope0', '--via', SLOW_GW], // no such interface
      ['--mode', 'replies', '--dev', 'lo', '--via', SLOW_GW],
      [...UP, '--dns', SLOW_GW], // an option of another mode
      [...UP, '--subnet', '10.231.0.0/30'],
      [...UP, '--ipv6', 'nat'],
    ];
    for (const args of cases) {
      expectUserError(await w.nsroute(['up', name, ...args]), 2);
    }
    expect(await w.snapshot()).toEqual(clean);
  });

  // One test per step: SIGKILLed right after it, then gc: the host exactly as before.
  for (let k = 0; k < STEPS; k++) {
    it(`SIGKILL after step ${k} of up, then gc: clean`, async () => {
      const r = await w.nsroute(['up', w.name(`ca${k}`), ...UP, '--no-watch'], { env: { NSROUTE_TEST_CRASH: `apply:${k}` } });
      expect(r.signal, show(r)).toBe('SIGKILL');
      expectOk(await w.nsroute(['gc']));
      expect(await w.snapshot()).toEqual(clean);
    });
    it(`SIGKILL after step ${k} of down, then gc: clean`, async () => {
      const name = w.name(`cu${k}`);
      expectOk(await w.nsroute(['up', name, ...UP, '--no-watch']));
      const r = await w.nsroute(['down', name], { env: { NSROUTE_TEST_CRASH: `undo:${k}` } });
      expect(r.signal, show(r)).toBe('SIGKILL');
      expectOk(await w.nsroute(['gc']));
      expect(await w.snapshot()).toEqual(clean);
    });
  }
});

describe('replies mode on a strict-rp_filter host (src_valid_mark)', () => {
  let w: World;
  let clean: Snapshot;
  useWorld((world, snapshot) => ((w = world), (clean = snapshot)), { rpFilter: true });
  useServer(() => w);

  it('without the policy the connection fails; with it, it works; after down the host is as before', async () => {
    await expectFails(w);
    const name = w.name('rp');
    expectOk(await w.nsroute(['up', name, ...UP, '--no-watch']));
    expect((await w.inHost(['sysctl', '-n', `net.ipv4.conf.${SLOW_DEV}.src_valid_mark`])).stdout.trim()).toBe('1');
    await expectConnects(w);
    expectOk(await w.nsroute(['down', name]));
    expect(await w.snapshot()).toEqual(clean);
    await expectFails(w);
  });
});
