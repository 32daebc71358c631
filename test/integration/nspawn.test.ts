// Boot for real (issue 14): nsroute's units under a running systemd. A systemd-nspawn container
// boots this machine's own root file system (an overlay: lowerdir=/, upper on a tmpfs) inside
// the test world's fake host namespace (two uplinks to fake gateways), and runs the worktree's
// nsroute in it: enable --now from a profile, exec through it, attach a real service, stop,
// start and restart of the namespace unit, reboots (one with the uplink down), down by hand,
// a failing enable --now, then detach and disable --now, after which the fake host's network is
// exactly as before enable.
//
// The container never sees the machine's network (its network namespace is the world's) nor
// the machine's nsroute state (/etc/nsroute, /etc/netns and /var/lib/nsroute are whited out in
// the overlay; /run is the container's own tmpfs). Every mount (overlay, tmpfs) lives in a
// private mount namespace that dies with the launcher; nspawn runs in cgroups of the test's own
// (named with the world's prefix), removed at the end; the world's destroy() kills whatever of
// the container would still run. Runnable alone: `npx vitest run test/integration/nspawn.test.ts`.
// Skipped, with a line saying why, only where systemd-nspawn is not installed (`apt-get install
// --no-install-recommends systemd-container`); NSROUTE_TEST_REQUIRE_NSPAWN=1 (.ci/run) makes
// that a failure instead.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CALL_TIMEOUT_MS,
  createWorld,
  DNS_SERVER,
  HOST_SLOW_ADDR,
  NSROUTE_JS,
  PATH_PORT,
  PATH_SERVER,
  REPO_ROOT,
  SLOW_ANSWER,
  SLOW_DEV,
  SLOW_GW,
  waitFor,
  type RunResult,
  type Snapshot,
  type World,
  alive,
  cgroupRoots,
} from '../world/world.js';
import { delta, NOTHING, show } from '../world/helpers.js';

const SYS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const haveNspawn = spawnSync('sh', ['-c', 'command -v systemd-nspawn'], { env: { PATH: SYS_PATH } }).status === 0;
const required = process.env.NSROUTE_TEST_REQUIRE_NSPAWN === '1';
if (!haveNspawn && !required) {
  process.stderr.write('nspawn.test.ts: skipped: systemd-nspawn is not installed (apt-get install --no-install-recommends systemd-container)\n');
}

// Booting, shutting down and rebooting a whole systemd on a loaded machine: generous, and
// only ever a hang guard (states are polled, never timed).
const BOOT_MS = 240_000;
const NAME = 'slow';
const UNIT = `nsroute-${NAME}.service`;
const SLOW = `slow ${HOST_SLOW_ADDR}`;
const DEMO = 'demo.service';
// What the attached service sees, written by itself every second to /run/demo/out.
const DEMO_SCRIPT = `#!/bin/sh
start=$(cat /proc/sys/kernel/random/uuid)
n=0
mkdir -p /run/demo
while :; do
  n=$((n + 1))
  ns=$(stat -L -c %i /proc/self/ns/net)
  path=$(socat -T5 -t5 - TCP4:${PATH_SERVER}:${PATH_PORT},connect-timeout=4 2>&1 | tail -n 1)
  dns=$(getent ahostsv4 demo.probe.test | head -n 1 | cut -d' ' -f1)
  resolv=$(awk '/^nameserver/ { printf "%s ", $2 }' /etc/resolv.conf)
  printf 'start=%s\\nn=%s\\nns=%s\\npath=%s\\ndns=%s\\nresolv=%s\\n' "$start" "$n" "$ns" "$path" "$dns" "$resolv" > /run/demo/out.tmp
  mv /run/demo/out.tmp /run/demo/out
  sleep 1
done
`;
const DEMO_UNIT = `[Unit]
Description=a service that reports the network it sees

[Service]
ExecStart=/bin/sh /etc/demo-probe.sh

[Install]
WantedBy=multi-user.target
`;

// Units of the machine that must not boot in the container: whatever it enables itself (a
// database, timers), and anything that would configure networks.
const ALWAYS_MASKED = [
  'networking.service',
  'systemd-networkd.service',
  'systemd-networkd.socket',
  'systemd-networkd-wait-online.service',
  'NetworkManager.service',
  'NetworkManager-wait-online.service',
  'ssh.service',
  'ssh.socket',
  'cron.service',
  'dnsmasq.service',
  'postgresql.service',
  'console-getty.service',
];
function unitsToMask(): string[] {
  const found: string[] = [];
  for (const dir of ['/etc/systemd/system']) {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir).filter((e) => e.endsWith('.wants'));
    } catch {
      /* none */
    }
    for (const wants of entries) {
      for (const u of readdirSync(join(dir, wants))) if (!u.endsWith('.target')) found.push(u);
    }
  }
  return [...new Set([...ALWAYS_MASKED, ...found])].filter((u) => /^[A-Za-z0-9@._-]+$/.test(u) && !u.endsWith('@.service'));
}

// Paths the container must see: the nsroute under test (a clone anywhere) and node.
function binds(): string[] {
  const out = new Set<string>([REPO_ROOT, dirname(dirname(NSROUTE_JS))]);
  if (statSync(process.execPath).dev !== statSync('/').dev) out.add(dirname(process.execPath));
  return [...out].map((p) => `--bind-ro=${p}`);
}

function childrenOf(pid: number): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push({ pid: Number(e), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {
      /* gone */
    }
  }
  return out;
}

function run(argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const [file, ...args] = argv;
    const child = spawn(file!, args, { env: { PATH: SYS_PATH, LANG: 'C', LC_ALL: 'C', HOME: '/root' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(opts.timeoutMs ?? 0, CALL_TIMEOUT_MS));
    child.on('error', (e) => (clearTimeout(timer), resolve({ exitCode: null, signal: null, stdout: out, stderr: err + String(e) })));
    child.on('close', (code, signal) => (clearTimeout(timer), resolve({ exitCode: code, signal, stdout: out, stderr: err })));
  });
}

interface Box {
  launcher: ChildProcess;
  log: () => string;
  exited: () => RunResult | undefined;
}

let w: World;
let box: Box | undefined;
let cgroups: string[] = [];
let clean: Snapshot;
let pid1 = 0; // the container's PID 1 (its systemd), as the machine sees it

function logTail(): string {
  return box ? box.log().split('\n').slice(-40).join('\n') : '';
}

// The container's systemd: the child of the systemd-nspawn that the launcher runs.
function findPid1(): number | undefined {
  if (!box?.launcher.pid) return undefined;
  // nspawn also forks helpers (at shutdown, say): only its child that is systemd, in the world.
  const nspawn = childrenOf(box.launcher.pid).find((c) => c.comm === 'systemd-nspawn');
  const init = nspawn ? childrenOf(nspawn.pid).find((c) => c.comm === 'systemd') : undefined;
  try {
    return init && statSync(`/proc/${init.pid}/ns/net`).ino === statSync(`/run/netns/${w.host}`).ino ? init.pid : undefined;
  } catch {
    return undefined;
  }
}

// A command inside the container (all its namespaces), as root.
function inBox(argv: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(['nsenter', '-t', String(pid1), '-a', '--', ...argv], opts);
}
function nsroute(args: readonly string[]): Promise<RunResult> {
  return inBox([process.execPath, NSROUTE_JS, ...args]);
}
function systemctl(...args: string[]): Promise<RunResult> {
  return inBox(['systemctl', ...args]);
}
async function isActive(unit: string): Promise<string> {
  return (await systemctl('is-active', unit)).stdout.trim();
}
async function waitState(unit: string, state: string): Promise<void> {
  await waitFor(async () => (await isActive(unit)) === state, `${unit} to be ${state}`, BOOT_MS, 200);
}
// A file of the container, seen from the machine (through its PID 1's root).
function boxPath(path: string): string {
  return `/proc/${pid1}/root${path}`;
}
function writeBoxFile(path: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(boxPath(path)), { recursive: true, mode: 0o755 });
  writeFileSync(boxPath(path), text, { mode });
}

function expectOk(r: RunResult): void {
  expect(r.exitCode, `${show(r)}\n--- container console:\n${logTail()}`).toBe(0);
}

// The container's PID 1 found (a new one after a reboot: the old one gone first) and its
// systemd done booting; PID 1 is looked up again at every poll.
async function waitBooted(previous?: number): Promise<void> {
  const current = () => {
    const exited = box?.exited();
    if (exited) throw new Error(`the container exited: ${show(exited)}\n${logTail()}`);
    if (previous !== undefined && alive(previous)) return undefined;
    const p = findPid1();
    if (p !== undefined && p !== previous) pid1 = p;
    return p !== undefined && p !== previous ? p : undefined;
  };
  await waitFor(current, 'the container to start', BOOT_MS, 100);
  let last = '';
  try {
    await waitFor(
      async () => current() !== undefined && ['running', 'degraded'].includes((last = (await systemctl('is-system-running')).stdout.trim())),
      "the container's systemd to finish booting",
      BOOT_MS,
      200,
    );
  } catch (e) {
    const jobs = await systemctl('list-jobs', '--no-legend');
    throw new Error(`${(e as Error).message} (is-system-running: ${last}; jobs: ${jobs.stdout.trim()})\n${logTail()}`);
  }
}

// systemctl reboot inside: nspawn exits 133 and the launcher starts it again.
async function reboot(): Promise<void> {
  const before = pid1;
  await systemctl('reboot');
  await waitBooted(before);
}

interface Demo {
  start: string;
  n: number;
  ns: string;
  path: string;
  dns: string;
  resolv: string;
}
function readDemo(): Demo | undefined {
  try {
    const text = readFileSync(boxPath('/run/demo/out'), 'utf8');
    const kv = Object.fromEntries(text.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return { start: kv.start ?? '', n: Number(kv.n), ns: kv.ns ?? '', path: kv.path ?? '', dns: kv.dns ?? '', resolv: kv.resolv ?? '' };
  } catch {
    return undefined;
  }
}
// The next report of the demo service that satisfies ok (a fresh start when `after` is given).
async function demoWhere(what: string, ok: (d: Demo) => boolean): Promise<Demo> {
  return (await waitFor<Demo | undefined>((): Demo | undefined => {
    const d = readDemo();
    return d && ok(d) ? d : undefined;
  }, `the demo service to report ${what} (last: ${JSON.stringify(readDemo())})`, BOOT_MS, 200))!;
}
// The inode of NAME's network namespace inside the container.
async function netnsInode(): Promise<string> {
  return (await netnsIdentity()).split('@')[0] ?? '';
}
// Inode and nsfs ctime: the kernel hands a freed namespace's inode number to the next one made,
// so only the pair tells a new namespace from the old one.
async function netnsIdentity(): Promise<string> {
  const r = await inBox(['stat', '-L', '-c', '%i@%.9Z', `/run/netns/${NAME}`]);
  expectOk(r);
  return r.stdout.trim();
}
// The container's own (the world's fake host) namespace.
function hostInode(): string {
  return String(statSync(`/proc/${pid1}/ns/net`).ino);
}

async function startBox(): Promise<void> {
  const dir = join(w.dir, 'box');
  const root = join(dir, 'root');
  const tmp = join(dir, 'tmp');
  mkdirSync(root, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  cgroups = cgroupRoots().map((r) => join(r, `${w.prefix}nspawn`));
  for (const cg of cgroups) mkdirSync(cg);
  const masks = unitsToMask();
  const nspawn = [
    'systemd-nspawn',
    '--quiet',
    '--boot',
    '--keep-unit',
    '--register=no',
    '--link-journal=no',
    '--console=read-only',
    `--machine=${w.prefix}box`,
    `--directory=${root}`,
    `--network-namespace-path=/run/netns/${w.host}`,
    '--capability=CAP_NET_ADMIN',
    ...binds(),
  ];
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  // In a private mount namespace: the upper dir's tmpfs, the whiteouts that hide the machine's
  // nsroute state (mkdir in the overlay then makes an opaque, empty directory), the masks, the
  // overlay, and a tmpfs on /run/systemd/nspawn (nspawn refuses to clean up a disk one).
  const inside = [
    'set -e',
    `mount -t tmpfs -o mode=0755 tmpfs ${q(tmp)}`,
    `mkdir -p ${q(tmp)}/upper/etc/systemd/system ${q(tmp)}/upper/var/lib ${q(tmp)}/work`,
    `mknod ${q(tmp)}/upper/etc/nsroute c 0 0`,
    `mknod ${q(tmp)}/upper/etc/netns c 0 0`,
    `mknod ${q(tmp)}/upper/var/lib/nsroute c 0 0`,
    ...masks.map((u) => `ln -s /dev/null ${q(`${tmp}/upper/etc/systemd/system/${u}`)}`),
    `mount -t overlay overlay -o ${q(`lowerdir=/,upperdir=${tmp}/upper,workdir=${tmp}/work`)} ${q(root)}`,
    'mkdir -p /run/systemd/nspawn',
    'mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn',
    'while :; do',
    `  rc=0; SYSTEMD_NSPAWN_API_VFS_WRITABLE=network ${nspawn.map(q).join(' ')} </dev/null || rc=$?`,
    '  [ "$rc" = 133 ] || exit "$rc"',
    '  echo "== nsroute test: container rebooted"',
    'done',
  ].join('\n');
  const outer = [...cgroups.map((cg) => `echo $$ > ${q(join(cg, 'cgroup.procs'))}`), `exec unshare --mount --propagation private -- sh -c ${q(inside)}`].join('\n');
  const launcher = spawn('sh', ['-c', outer], { env: { PATH: SYS_PATH, LANG: 'C', LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let exited: RunResult | undefined;
  launcher.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
  launcher.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  launcher.on('close', (code, signal) => (exited = { exitCode: code, signal, stdout: log, stderr: '' }));
  box = { launcher, log: () => log, exited: () => exited };
  await waitBooted();
}

// Everything the container was, gone: halt it (SIGTERM to nspawn), else kill what is left in
// its cgroups, then remove them (deepest first).
async function stopBox(): Promise<void> {
  if (box?.launcher.pid && alive(box.launcher.pid)) {
    const nspawn = childrenOf(box.launcher.pid).find((c) => c.comm === 'systemd-nspawn');
    if (nspawn) process.kill(nspawn.pid, 'SIGTERM');
    try {
      await waitFor(() => box!.exited() !== undefined || !alive(box!.launcher.pid!), 'the container to halt', BOOT_MS, 200);
    } catch {
      /* killed below */
    }
  }
  const procsOf = (cg: string): number[] => {
    const out: number[] = [];
    const walk = (d: string) => {
      try {
        out.push(...readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number));
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
      } catch {
        /* gone */
      }
    };
    walk(cg);
    return out;
  };
  for (let round = 0; round < 50 && cgroups.some((cg) => procsOf(cg).length > 0); round++) {
    for (const cg of cgroups) for (const p of procsOf(cg)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const rmTree = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(d, e.name));
    rmdirSync(d);
  };
  for (const cg of cgroups) rmTree(cg);
}

describe.skipIf(!haveNspawn && !required)('nsroute under a real systemd (systemd-nspawn)', () => {
  beforeAll(async () => {
    w = await createWorld();
    try {
      await startBox();
      clean = await w.snapshot();
    } catch (e) {
      await stopBox().catch(() => undefined);
      await w.destroy();
      throw e;
    }
  }, BOOT_MS * 2);

  afterAll(async () => {
    try {
      await stopBox();
    } finally {
      await w?.destroy();
    }
  }, BOOT_MS * 2);

  it('the container runs in the world: its network is the fake host, and it sees no nsroute state of the machine', async () => {
    expect(hostInode()).toBe(String(statSync(`/run/netns/${w.host}`).ino));
    for (const p of ['/etc/nsroute', '/etc/netns', '/var/lib/nsroute', '/run/nsroute']) expect(existsSync(boxPath(p)), p).toBe(false);
    const links = await inBox(['ip', '-br', 'link']);
    expect(links.stdout).toMatch(new RegExp(`^${SLOW_DEV}@`, 'm'));
  });

  it('enable --now from a profile: the unit is active and NAME is up', async () => {
    writeBoxFile(`/etc/nsroute/${NAME}.toml`, `via = "${SLOW_GW}"\ndns = ["${DNS_SERVER}"]\n`);
    const r = await nsroute(['enable', NAME, '--now']);
    expectOk(r);
    expect(await isActive(UNIT)).toBe('active');
    const st = await nsroute(['status', NAME, '--json']);
    expectOk(st);
    expect(JSON.parse(st.stdout)).toMatchObject({ up: true, persistent: true, gateway: SLOW_GW });
  });

  it('exec goes through it', async () => {
    const r = await nsroute(['exec', NAME, '--', 'socat', '-T20', '-t20', '-', `TCP4:${PATH_SERVER}:${PATH_PORT},connect-timeout=4`]);
    expectOk(r);
    expect(r.stdout.trim()).toBe(SLOW);
  });

  it('attach a real service: it sees the namespace, its resolv.conf, and its TCP and DNS go via the slow uplink; also after a restart', async () => {
    writeBoxFile('/etc/demo-probe.sh', DEMO_SCRIPT, 0o755);
    writeBoxFile(`/etc/systemd/system/${DEMO}`, DEMO_UNIT);
    expectOk(await systemctl('daemon-reload'));
    expectOk(await systemctl('enable', '--now', DEMO));
    // Before attach: the container's own network (the fast default route).
    await demoWhere('the host network', (d) => d.ns === hostInode());
    expectOk(await nsroute(['attach', NAME, DEMO]));
    const ns = await netnsInode();
    const d = await demoWhere('the namespace', (x) => x.ns === ns && x.path !== '');
    expect(d).toMatchObject({ ns, path: SLOW, dns: SLOW_ANSWER, resolv: `${DNS_SERVER} ` });
    expectOk(await systemctl('restart', DEMO));
    const again = await demoWhere('a new start', (x) => x.start !== d.start && x.path !== '');
    expect(again).toMatchObject({ ns, path: SLOW, dns: SLOW_ANSWER });
  });

  it('systemctl stop of the namespace unit stops the service; start brings only the namespace back; restart brings both', async () => {
    expectOk(await systemctl('stop', UNIT));
    expect(await isActive(DEMO)).toBe('inactive');
    expect(existsSync(boxPath(`/run/netns/${NAME}`))).toBe(false);
    expectOk(await systemctl('start', UNIT));
    // BindsTo= stops, it does not start (docs/boot.md): the service stays stopped.
    expect(await isActive(DEMO)).toBe('inactive');
    expectOk(await systemctl('start', DEMO));
    const id = await netnsIdentity();
    const ns = id.split('@')[0] ?? '';
    const d = await demoWhere('the new namespace', (x) => x.ns === ns && x.path !== '');
    expect(d.path).toBe(SLOW);
    expectOk(await systemctl('restart', UNIT));
    await waitState(DEMO, 'active');
    const id2 = await netnsIdentity();
    expect(id2).not.toBe(id);
    const ns2 = id2.split('@')[0] ?? '';
    const d2 = await demoWhere('the restarted namespace', (x) => x.ns === ns2 && x.start !== d.start && x.path !== '');
    expect(d2.path).toBe(SLOW);
  });

  it('a reboot: the namespace unit comes up before the service, which works again', async () => {
    await reboot();
    await waitState(UNIT, 'active');
    await waitState(DEMO, 'active');
    const stamp = async (unit: string, prop: string) => Number((await systemctl('show', `--property=${prop}`, '--value', unit)).stdout.trim());
    expect(await stamp(DEMO, 'ExecMainStartTimestampMonotonic')).toBeGreaterThanOrEqual(await stamp(UNIT, 'ActiveEnterTimestampMonotonic'));
    const ns = await netnsInode();
    const d = await demoWhere('the namespace after the reboot', (x) => x.ns === ns && x.path !== '');
    expect(d).toMatchObject({ path: SLOW, dns: SLOW_ANSWER });
  });

  it('a reboot with the uplink down: the unit and the service start, nothing leaves until the uplink comes up, then it flows', async () => {
    await w.setUplink('slow', false);
    let down = true;
    try {
      await reboot();
      await waitState(UNIT, 'active');
      await waitState(DEMO, 'active');
      const ns = await netnsInode();
      const blocked = await demoWhere('no route', (x) => x.ns === ns && /No route to host|Network is unreachable/.test(x.path));
      const [f0, s0] = [await w.gatewayPackets('fast'), await w.gatewayPackets('slow')];
      // Three more rounds of the service's probes: none reaches either gateway.
      await demoWhere('three more probes', (x) => x.start === blocked.start && x.n >= blocked.n + 3);
      expect(delta(f0, await w.gatewayPackets('fast'))).toEqual(NOTHING);
      expect(delta(s0, await w.gatewayPackets('slow'))).toEqual(NOTHING);
      const journal = await inBox(['journalctl', '--no-pager', '-o', 'cat', '-b', '-u', UNIT]);
      expect(journal.stdout).toContain(`nsroute: ${NAME} is up with its kill switch closed: uplink ${SLOW_DEV} is down`);
      await w.setUplink('slow', true);
      down = false;
      const d = await demoWhere('the route back', (x) => x.start === blocked.start && x.path === SLOW);
      expect(d.dns).toBe(SLOW_ANSWER);
    } finally {
      if (down) await w.setUplink('slow', true);
    }
  });

  it('down by hand while the unit is active: refused in one line naming systemctl stop; nothing changes', async () => {
    for (const args of [['down', NAME], ['down', NAME, '--force']]) {
      const r = await nsroute(args);
      expect(r.exitCode, show(r)).toBe(2);
      expect(r.stderr.trimEnd().split('\n'), show(r)).toHaveLength(1);
      expect(r.stderr).toContain(`\`systemctl stop nsroute-${NAME}\``);
    }
    expect(await isActive(UNIT)).toBe('active');
    expect(await isActive(DEMO)).toBe('active');
    const ns = await netnsInode();
    expect((await demoWhere('still working', (x) => x.ns === ns && x.path !== '')).path).toBe(SLOW);
  });

  it('enable --now whose start fails: one line, exit 1, and the unit is neither enabled nor left behind', async () => {
    const bad = 'bad';
    writeBoxFile(`/etc/nsroute/${bad}.toml`, 'via = "10.99.9.1"\n');
    const r = await nsroute(['enable', bad, '--now']);
    expect(r.exitCode, show(r)).toBe(1);
    expect(r.stderr.trimEnd().split('\n'), show(r)).toEqual([expect.stringMatching(/^nsroute: nsroute-bad\.service did not start \(gateway 10\.99\.9\.1 is not reachable on any host link.*\), so enable was undone; /)]);
    expect(existsSync(boxPath(`/etc/systemd/system/nsroute-${bad}.service`))).toBe(false);
    expect((await systemctl('is-enabled', `nsroute-${bad}.service`)).stdout.trim()).not.toBe('enabled');
    expect((await systemctl('list-units', '--all', '--no-legend', `nsroute-${bad}.service`)).stdout.trim()).toBe('');
  });

  it('detach, disable --now: the service runs on the host network again and the fake host is exactly as before enable', async () => {
    expectOk(await nsroute(['detach', NAME, DEMO]));
    await demoWhere('the host network again', (x) => x.ns === hostInode() && x.path !== '');
    expectOk(await nsroute(['disable', NAME, '--now']));
    expect(await isActive(UNIT)).not.toBe('active');
    expect(existsSync(boxPath(`/run/netns/${NAME}`))).toBe(false);
    expect(existsSync(boxPath(`/etc/systemd/system/${UNIT}`))).toBe(false);
    expect(existsSync(boxPath(`/etc/systemd/system/${DEMO}.d`))).toBe(false);
    expectOk(await systemctl('disable', '--now', DEMO));
    expect(await w.snapshot()).toEqual(clean);
  });
});
