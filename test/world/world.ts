// The test world: a fake host namespace with a fast default uplink and a slow second uplink to
// two fake gateway namespaces, each serving "which path did you come through" over TCP and a
// dnsmasq that answers differently per path. nsroute runs inside the fake host, so the real
// machine's network is never touched (ARCHITECTURE.md, "The test world").
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Addresses of the world. Everything lives inside the world's namespaces.
export const FAST_GW = '10.99.1.1';
export const SLOW_GW = '10.99.2.1';
export const HOST_FAST_ADDR = '10.99.1.2';
export const HOST_SLOW_ADDR = '10.99.2.2';
export const FAST_GW6 = 'fd99:1::1';
export const SLOW_GW6 = 'fd99:2::1';
export const HOST_FAST_ADDR6 = 'fd99:1::2';
export const HOST_SLOW_ADDR6 = 'fd99:2::2';
export const PATH_SERVER = '198.18.0.10';
export const PATH_SERVER6 = 'fd99:ff::10';
export const PATH_PORT = 7000;
export const DNS_SERVER = '198.18.0.53';
export const PROBE_DOMAIN = 'probe.test';
export const FAST_ANSWER = '198.18.1.1';
export const SLOW_ANSWER = '198.18.2.2';
// The fake host's own "resolved-style" stub (option resolvedStub) and what it answers.
export const STUB_ADDR = '127.0.0.53';
export const STUB_ANSWER = '198.18.9.9';
// Host-side uplink interface names in the fake host; the gateway end is always lan0.
export const FAST_DEV = 'upf';
export const SLOW_DEV = 'ups';
// The optional second LAN between the fake host and the fast gateway (options lan, lanBridge,
// lanDhcp): no NAT, no default route of the host through it. The fast gateway's path server
// (198.18.0.10) answers a namespace on it with that namespace's own address.
export const LAN_GW = '10.99.3.1';
export const HOST_LAN_ADDR = '10.99.3.2';
export const LAN_PREFIX = 24;
export const LAN_NET = '10.99.3.0/24';
export const LAN_DEV = 'lan1'; // in the fake host
export const LAN_GW_DEV = 'lanb'; // in the fast gateway
export const LAN_BRIDGE = 'br0'; // option lanBridge: the fake host's bridge holding lan1
// The bridge's MAC is set, as systemd-networkd does, rather than taken from its lowest port.
export const LAN_BRIDGE_MAC = '02:99:03:00:00:02';
// A second TCP server in the fast gateway, on its LAN address: `lan <peer address>`.
export const LAN_PATH_PORT = 7001;
// Option lanDhcp: dnsmasq in the fast gateway leases these (router LAN_GW, DNS DNS_SERVER).
export const DHCP_FIRST = '10.99.3.100';
export const DHCP_LAST = '10.99.3.150';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// NSROUTE_TEST_BIN runs the tests against another build (e.g. a deliberately broken copy).
export const NSROUTE_JS = process.env.NSROUTE_TEST_BIN ? resolve(process.env.NSROUTE_TEST_BIN) : join(REPO_ROOT, 'dist', 'nsroute.js');

const PREFIX_RE = /^nt[0-9a-f]{4}-/;
const WORLD_DIR_PREFIX = 'nsroute-world-';
const REQUIRED_TOOLS = ['ip', 'nft', 'socat', 'dnsmasq', 'nsenter', 'sysctl', 'ss'];
const SYS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  // Extra environment; a value of undefined removes the variable.
  env?: Record<string, string | undefined>;
  input?: string;
  cwd?: string;
  // A hang guard: the process is SIGKILLed after this long, but never sooner than
  // CALL_TIMEOUT_MS (a slow machine is slow, not hung); the result then has signal SIGKILL.
  timeoutMs?: number;
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  // Output so far.
  stdout(): string;
  stderr(): string;
  // Settles once the process has exited (never rejects).
  result: Promise<RunResult>;
  kill(signal?: NodeJS.Signals): void;
}

export interface Snapshot {
  // Only in worlds made with forwardDrop: `iptables-save` / `ip6tables-save` of the fake host,
  // comments and packet counters removed (the nft ruleset shows these tables too).
  iptables?: string;
  ip6tables?: string;
  link: unknown;
  addr: unknown;
  route4: unknown;
  route6: unknown;
  rule4: unknown;
  rule6: unknown;
  nft: string;
  sysctl: Record<string, string>;
}

export type Gateway = 'fast' | 'slow';
// DNS servers whose queries are logged: the two gateways' and the fake host's stub.
export type DnsServerTag = Gateway | 'stub';

// Packets a gateway received on its lan0, counted by an nft table in the gateway namespace
// (prerouting, so also packets it then drops because they are not for it).
export interface GatewayPackets {
  path4: number; // TCP to port PATH_PORT over IPv4
  path6: number; // the same over IPv6
  dns: number; // UDP or TCP to port 53, any destination address
  // Sources outside the world's links (10.99.0.0/16, fd99::/16, fe80::/10, ::): traffic that
  // left the fake host without masquerade, e.g. straight from an nsroute namespace.
  foreign: number;
}

export interface DhcpEvent {
  event: string; // DHCPACK, DHCPRELEASE, ...
  address: string | null; // the leased / released address (null for DHCPDISCOVER without one)
  mac: string | null;
  line: string;
}

export interface DhcpProbeResult {
  address: string;
  server: string;
  router: string | null;
  dns: string[];
  mac: string;
}

export interface World {
  prefix: string;
  // Namespace names.
  host: string;
  gwFast: string;
  gwSlow: string;
  // Temp dir of this world and what lives in it.
  dir: string;
  // The nsroute bundle this world runs (NSROUTE_JS, or its copy with the privateBin option).
  bin: string;
  runDir: string;
  libDir: string; // NSROUTE_LIB_DIR: saved user files and sysctls
  configDir: string;
  resolvConf: string;
  resolvedConf: string;
  // `${prefix}${suffix}`: names for nsroute namespaces that destroy() sweeps.
  name(suffix: string): string;
  // nsroute inside the fake host (nsenter --net, so its /run/netns mounts persist).
  nsroute(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  spawnNsroute(args: readonly string[], opts?: RunOptions): Spawned;
  // Any command in the fake host / in one of the world's namespaces (nsenter --net).
  inHost(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  inNetns(netns: string, argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  // The same, long-running (a server): killed by destroy() at the latest.
  spawnIn(netns: string, argv: readonly string[], opts?: RunOptions): Spawned;
  // Connect from the fake host to the path server (v4 or v6) and return its answer line.
  hostPath(family?: 4 | 6): Promise<string>;
  // Option lan: connect from the fake host to the LAN server on LAN_GW:LAN_PATH_PORT and return
  // its answer line (`lan 10.99.3.2` when the host reaches the LAN with its own address).
  hostLanPath(): Promise<string>;
  // Option lanDhcp: the DHCP server's log so far ('' before it wrote any), and its
  // DHCPDISCOVER/OFFER/REQUEST/ACK/NAK/RELEASE/DECLINE lines parsed, in log order.
  dhcpLog(): string;
  dhcpEvents(): DhcpEvent[];
  // Option lanDhcp: a minimal DHCP client (node, no other tool) on DEV inside NETNS, which must
  // have an address of its own on the LAN and a route out of DEV for 255.255.255.255.
  // DISCOVER, REQUEST, and with release also RELEASE; resolves what the server ACKed.
  dhcpProbe(netns: string, dev: string, opts?: { release?: boolean }): Promise<DhcpProbeResult>;
  // Ask the DNS server at `server` (from the fake host) for A records of `name`.
  hostLookup(server: string, name: string): Promise<string[]>;
  // Everything about the fake host's network that nsroute may change and must restore.
  snapshot(): Promise<Snapshot>;
  // How many queries for NAME the given gateway's dnsmasq (or, with resolvedStub, the fake
  // host's stub) has logged.
  dnsQueries(gw: DnsServerTag, name: string): number;
  // dnsmasq writes its log from its event loop, possibly just after the answer: poll for it.
  waitDnsQueries(gw: DnsServerTag, name: string, atLeast?: number, timeoutMs?: number): Promise<number>;
  // Packets the gateway has received on lan0 so far (compare before/after an action).
  gatewayPackets(gw: Gateway): Promise<GatewayPackets>;
  // Take the fake host's uplink to that gateway down (`ip link set upf|ups down`: the kernel
  // drops its routes, in every table) or up again. Up waits for carrier and puts back what the
  // kernel removed and the world had set up (the IPv6 address, and for fast the default
  // routes), so the snapshot is the world's again; routes others (nsroute) added are not.
  setUplink(gw: Gateway, up: boolean): Promise<void>;
  netnsExists(name: string): boolean;
  writeProfile(name: string, text: string): string;
  writeResolvConf(text: string): void;
  writeResolvedConf(text: string | null): void;
  destroy(): Promise<void>;
}

// Time limits of the world's helpers. They catch hangs, not slowness: our CI shares machines,
// and a machine 5-10x slower than a quiet one must still meet them (a quiet machine needs a few
// seconds for the slowest single call: nsroute plus a probe's 4 s connect-timeout). A hang is
// still caught, by these and by vitest's per-test timeout (vitest.config.ts), which is above them
// so that a call killed here fails with its own output. Callers' smaller timeoutMs values are
// raised to these floors; to stop a process on purpose, spawn it and kill() it.
export const CALL_TIMEOUT_MS = 90_000; // one command (nsroute, a probe, a tool)
export const WAIT_TIMEOUT_MS = 60_000; // polling for a state the system reaches by itself

// Poll until fn() returns a truthy value; throws with `what` after timeoutMs (at least
// WAIT_TIMEOUT_MS: the value passed says how long it takes on a quiet machine).
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = WAIT_TIMEOUT_MS, stepMs = 50): Promise<T> {
  timeoutMs = Math.max(timeoutMs, WAIT_TIMEOUT_MS);
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(stepMs);
  }
}

// socat reports IPv6 peers fully expanded: fd99:1::2 -> fd99:0001:0000:...:0002.
export function expandV6(addr: string): string {
  const [head, tail] = addr.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function buildEnv(base: Record<string, string>, extra?: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: Record<string, string> = { ...base };
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function spawnTracked(argv: readonly string[], opts: RunOptions & { baseEnv: Record<string, string> }, pids: Set<number>): Spawned {
  const [file, ...args] = argv;
  const child = spawn(file!, args, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: buildEnv(opts.baseEnv, opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdin!.on('error', () => {});
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else child.stdin!.end();
  const pid = child.pid ?? -1;
  if (pid > 0) pids.add(pid);
  const timer = setTimeout(() => child.kill('SIGKILL'), Math.max(opts.timeoutMs ?? 0, CALL_TIMEOUT_MS));
  const result = new Promise<RunResult>((res) => {
    child.on('error', (e) => {
      clearTimeout(timer);
      pids.delete(pid);
      res({ exitCode: null, signal: null, stdout: out, stderr: err + String(e) });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      pids.delete(pid);
      res({ exitCode: code, signal, stdout: out, stderr: err });
    });
  });
  return {
    child,
    pid,
    stdout: () => out,
    stderr: () => err,
    result,
    kill: (signal: NodeJS.Signals = 'SIGTERM') => {
      child.kill(signal);
    },
  };
}

function runSync(argv: readonly string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const [file, ...args] = argv;
  const r = spawnSync(file!, args, { input, encoding: 'utf8', env: { PATH: SYS_PATH, LC_ALL: 'C' }, timeout: CALL_TIMEOUT_MS });
  return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function mustSync(argv: readonly string[], input?: string): string {
  const r = runSync(argv, input);
  if (r.code !== 0) throw new Error(`test world: \`${argv.join(' ')}\` failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

function checkTools(extra: readonly string[] = []): void {
  if (process.getuid?.() !== 0) throw new Error('test world: integration tests need root (they create network namespaces)');
  const missing = [...REQUIRED_TOOLS, ...extra].filter((t) => runSync(['sh', '-c', `command -v ${t}`]).code !== 0);
  if (missing.length) {
    throw new Error(
      `test world: missing tools: ${missing.join(', ')}. Install: apt-get install iproute2 nftables socat dnsmasq-base util-linux procps iptables`,
    );
  }
}

function listNetns(): string[] {
  try {
    return readdirSync('/run/netns');
  } catch {
    return [];
  }
}

function netnsInode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

// Pids of processes whose network namespace is one of the given ones (inode numbers). These
// were all started by this world (servers, nsroute and the commands it ran inside).
function pidsInNetns(inodes: Set<number>): number[] {
  if (inodes.size === 0) return [];
  const pids: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${ent}/ns/net`));
      if (m && inodes.has(Number(m[1]))) pids.push(Number(ent));
    } catch {
      /* gone or not ours to read */
    }
  }
  return pids.filter((p) => p !== process.pid);
}

// A zombie counts as dead: our own children are only reaped when the event loop runs again.
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function killPids(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

// Synchronous teardown of everything carrying `prefix`: used by destroy(), by the exit hook and
// by the sweep of worlds whose owner process died.
function sweepPrefix(prefix: string, extraPids: readonly number[], dir: string | null): string[] {
  const problems: string[] = [];
  const names = listNetns().filter((n) => n.startsWith(prefix));
  const inodes = new Set<number>();
  for (const n of names) {
    const ino = netnsInode(`/run/netns/${n}`);
    if (ino !== null) inodes.add(ino);
  }
  let victims = [...new Set([...extraPids, ...pidsInNetns(inodes)])].filter(alive);
  killPids(victims, 'SIGTERM');
  const end = Date.now() + 10_000;
  while (victims.some(alive) && Date.now() < end) spawnSync('sleep', ['0.05']);
  victims = victims.filter(alive);
  killPids(victims, 'SIGKILL');
  for (const n of names) {
    const r = runSync(['ip', 'netns', 'del', n]);
    if (r.code !== 0 && existsSync(`/run/netns/${n}`)) problems.push(`ip netns del ${n}: ${r.stderr.trim()}`);
  }
  for (const e of etcNetnsEntries()) if (e.startsWith(prefix)) removeEtcNetns(e);
  for (const cg of worldCgroups()) if (basename(cg).startsWith(prefix)) removeCgroupTree(cg);
  if (dir) rmSync(dir, { recursive: true, force: true });
  return problems;
}

// Worlds left behind by a test process that was killed: their owner pid file names a dead pid.
function sweepStaleWorlds(): void {
  const prefixes = new Set(listNetns().map((n) => PREFIX_RE.exec(n)?.[0]).filter((p): p is string => !!p));
  for (const ent of readdirSync(tmpdir())) {
    if (ent.startsWith(WORLD_DIR_PREFIX)) {
      const p = ent.slice(WORLD_DIR_PREFIX.length);
      if (PREFIX_RE.test(p)) prefixes.add(p);
    }
  }
  for (const p of prefixes) {
    const dir = join(tmpdir(), WORLD_DIR_PREFIX + p);
    let owner = NaN;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      continue; // no owner record: maybe being created right now, leave it
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) sweepPrefix(p, [], dir);
  }
  // /etc/netns entries and cgroups of a world whose directory and namespaces are gone: a test
  // process SIGKILLed while a NAME was up (or a container ran), its world then removed by hand or
  // by an older sweep. A live world has its directory from before its first namespace until
  // after its last entry and cgroup (createWorld, sweepPrefix), so none of its own is taken here.
  const live = new Set(listNetns().map((n) => PREFIX_RE.exec(n)?.[0]));
  const gone = (name: string) => {
    const p = PREFIX_RE.exec(name)?.[0];
    return !!p && !live.has(p) && !existsSync(join(tmpdir(), WORLD_DIR_PREFIX + p));
  };
  for (const e of etcNetnsEntries()) if (gone(e)) removeEtcNetns(e);
  for (const cg of worldCgroups()) if (gone(basename(cg))) removeCgroupTree(cg);
}

// The cgroup hierarchies a test makes cgroups in: the unified one (v2, or v2 under /unified on
// a hybrid layout) and the named systemd one (v1 and hybrid). Those cgroups carry the world
// prefix at the top of them (nspawn.test's container, cgroup mode's NSROUTE_CGROUP_PARENT).
export function cgroupRoots(): string[] {
  return ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd'].filter((r) => existsSync(join(r, 'cgroup.procs')));
}

function worldCgroups(): string[] {
  const out: string[] = [];
  for (const root of cgroupRoots()) {
    try {
      for (const e of readdirSync(root, { withFileTypes: true })) if (e.isDirectory() && PREFIX_RE.test(e.name)) out.push(join(root, e.name));
    } catch {
      /* unreadable: nothing of ours */
    }
  }
  return out;
}

// Deepest first. A cgroup that still has processes stays (rmdir fails): only processes in the
// world's namespaces are killed (sweepPrefix), never by cgroup.
function removeCgroupTree(dir: string): void {
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
    rmdirSync(dir);
  } catch {
    /* busy, or gone: left for the next sweep */
  }
}

function removeEtcNetns(entry: string): void {
  try {
    rmSync(join('/etc/netns', entry), { recursive: true, force: true });
  } catch {
    /* left for the next sweep */
  }
}

function etcNetnsEntries(): string[] {
  try {
    return readdirSync('/etc/netns');
  } catch {
    return []; // no /etc/netns
  }
}

const liveWorlds = new Set<World>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const w of liveWorlds) sweepPrefix(w.prefix, [], w.dir);
  });
}

function serverCommand(netns: string, argv: readonly string[]): string[] {
  return ['nsenter', `--net=/run/netns/${netns}`, ...argv];
}

async function listening(netns: string, proto: 'tcp' | 'udp', addr: string, port: number): Promise<boolean> {
  const r = runSync(['nsenter', `--net=/run/netns/${netns}`, 'ss', '-Hln', proto === 'tcp' ? '-t' : '-u']);
  const want = addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
  const wantDev = new RegExp(`^${want.replace(/[.*[\]]/g, '\\$&').replace(/:(\d+)$/, '%[^:]+:$1')}$`);
  return r.code === 0 && r.stdout.split('\n').some((l) => l.split(/\s+/).some((f) => f === want || wantDev.test(f)));
}

export interface WorldOptions {
  // Content of the fake host's resolv.conf (NSROUTE_RESOLV_CONF). Default: the fast gateway.
  resolvConf?: string;
  // Turn on IPv6 forwarding in the fake host (like a container host), so a namespace that got
  // an IPv6 route would really escape through it.
  ipv6Forwarding?: boolean;
  // A second IPv6 default route in the fake host's main table, via the slow gateway with a
  // worse metric (2048), as on a host that takes router advertisements on both links. The
  // host's own IPv6 still goes fast.
  slowIpv6Default?: boolean;
  // Strict reverse-path filtering in the fake host: rp_filter=1 on all, default, lo, upf, ups.
  rpFilter?: boolean;
  // `iptables -P FORWARD DROP` and `ip6tables -P FORWARD DROP` in the fake host, as Docker
  // does (iptables-nft: a `table ip filter` / `ip6 filter` with a drop-policy FORWARD chain).
  // The snapshot then also holds iptables-save / ip6tables-save. Needs `iptables`.
  forwardDrop?: boolean;
  // A native nft table `inet filter` with a forward chain of policy drop in the fake host.
  nftForwardDrop?: boolean;
  // A systemd-resolved-like host: a dnsmasq stub on 127.0.0.53 in the fake host (answering
  // *.probe.test with STUB_ANSWER, queries logged: dnsQueries('stub', name)), the fake host's
  // resolv.conf pointing at it, and the resolved upstream file pointing at the fast gateway.
  // Overrides resolvConf.
  resolvedStub?: boolean;
  // A second LAN: fake host LAN_DEV (HOST_LAN_ADDR/24, no default route through it) <-veth->
  // fast gateway LAN_GW_DEV (LAN_GW/24). The gateway's path server answers a namespace on it
  // with the namespace's own address; LAN_GW:LAN_PATH_PORT answers `lan <peer>`.
  lan?: boolean;
  // Implies lan: LAN_DEV is a port of the bridge LAN_BRIDGE, which holds HOST_LAN_ADDR/24
  // instead (a host that is already bridged).
  lanBridge?: boolean;
  // Implies lan: dnsmasq in the fast gateway serves DHCP on LAN_GW_DEV: DHCP_FIRST-DHCP_LAST,
  // router LAN_GW, DNS DNS_SERVER; log: dhcpLog() / dhcpEvents().
  lanDhcp?: boolean;
  // Run a copy of the build (dirname of NSROUTE_JS) kept in the world's dir, root's and
  // readable by everyone: for tests whose other users must run nsroute, or whose nsroute
  // refuses a bundle in a directory that is not root's alone, wherever the clone is.
  privateBin?: boolean;
}

export async function createWorld(opts: WorldOptions = {}): Promise<World> {
  checkTools(opts.forwardDrop ? ['iptables', 'ip6tables', 'iptables-save', 'ip6tables-save'] : []);
  sweepStaleWorlds();
  installExitHook();

  let prefix = '';
  for (;;) {
    prefix = `nt${randomBytes(2).toString('hex')}-`;
    const taken = [...listNetns(), ...etcNetnsEntries()].some((n) => n.startsWith(prefix)) || existsSync(join(tmpdir(), WORLD_DIR_PREFIX + prefix));
    if (!taken) break;
  }
  const dir = join(tmpdir(), WORLD_DIR_PREFIX + prefix);
  mkdirSync(dir, { mode: 0o755 });
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  const runDir = join(dir, 'run');
  const libDir = join(dir, 'lib');
  const configDir = join(dir, 'config');
  const resolvConf = join(dir, 'host-resolv.conf');
  const resolvedConf = join(dir, 'host-resolved-resolv.conf'); // absent unless a test writes it
  mkdirSync(runDir);
  mkdirSync(configDir);
  let bin = NSROUTE_JS;
  if (opts.privateBin) {
    if (!existsSync(NSROUTE_JS)) throw new Error(`${NSROUTE_JS} is missing: run \`npm run build\` first`);
    const binDir = join(dir, 'bin');
    cpSync(dirname(NSROUTE_JS), binDir, { recursive: true, filter: (src) => !src.endsWith('.deb') });
    spawnSync('chmod', ['-R', 'u=rwX,go=rX', binDir]);
    bin = join(binDir, basename(NSROUTE_JS));
  }
  if (opts.resolvedStub) {
    writeFileSync(resolvConf, `nameserver ${STUB_ADDR}\noptions edns0 trust-ad\nsearch .\n`);
    writeFileSync(resolvedConf, `nameserver ${FAST_GW}\n`);
  } else {
    writeFileSync(resolvConf, opts.resolvConf ?? `nameserver ${FAST_GW}\n`);
  }

  const host = `${prefix}host`;
  const gwFast = `${prefix}gwf`;
  const gwSlow = `${prefix}gws`;
  const pids = new Set<number>();
  const baseEnv: Record<string, string> = {
    PATH: process.env.PATH ? `${process.env.PATH}:${SYS_PATH}` : SYS_PATH,
    HOME: '/root',
    LANG: 'C',
    LC_ALL: 'C',
    NSROUTE_RUN_DIR: runDir,
    NSROUTE_LIB_DIR: libDir,
    NSROUTE_CONFIG_DIR: configDir,
    NSROUTE_RESOLV_CONF: resolvConf,
    NSROUTE_RESOLVED_CONF: resolvedConf,
  };
  let destroyed = false;
  const lan = !!(opts.lan || opts.lanBridge || opts.lanDhcp);

  const inNetns = (netns: string, argv: readonly string[], o: RunOptions = {}): Promise<RunResult> =>
    spawnTracked(['nsenter', `--net=/run/netns/${netns}`, ...argv], { ...o, baseEnv }, pids).result;

  const world: World = {
    prefix,
    host,
    gwFast,
    gwSlow,
    dir,
    runDir,
    libDir,
    configDir,
    resolvConf,
    resolvedConf,
    name: (suffix) => `${prefix}${suffix}`,
    nsroute: (args, o = {}) => world.spawnNsroute(args, o).result,
    bin,
    spawnNsroute(args, o = {}) {
      if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build\` first`);
      return spawnTracked(['nsenter', `--net=/run/netns/${host}`, process.execPath, bin, ...args], { ...o, baseEnv }, pids);
    },
    inHost: (argv, o) => inNetns(host, argv, o),
    inNetns,
    spawnIn: (netns, argv, o = {}) => spawnTracked(['nsenter', `--net=/run/netns/${netns}`, ...argv], { ...o, baseEnv }, pids),
    async hostPath(family = 4) {
      const target = family === 4 ? `TCP4:${PATH_SERVER}:${PATH_PORT}` : `TCP6:[${PATH_SERVER6}]:${PATH_PORT}`;
      const r = await inNetns(host, ['socat', '-T20', '-t20', '-', target], { timeoutMs: 10_000 });
      return r.stdout.trim();
    },
    async hostLanPath() {
      if (!lan) throw new Error('hostLanPath() needs a world with option lan');
      const r = await inNetns(host, ['socat', '-T20', '-t20', '-', `TCP4:${LAN_GW}:${LAN_PATH_PORT},connect-timeout=4`], { timeoutMs: 10_000 });
      return r.stdout.trim();
    },
    dhcpLog() {
      try {
        return readFileSync(join(dir, 'dnsmasq-dhcp.log'), 'utf8');
      } catch {
        return '';
      }
    },
    dhcpEvents() {
      return parseDhcpLog(world.dhcpLog());
    },
    async dhcpProbe(netns, dev, o = {}) {
      if (!opts.lanDhcp) throw new Error('dhcpProbe() needs a world with option lanDhcp');
      const l = await inNetns(netns, ['ip', '-j', 'link', 'show', dev]);
      const mac = (JSON.parse(l.stdout || '[]') as { address?: string }[])[0]?.address;
      if (l.exitCode !== 0 || !mac) throw new Error(`dhcpProbe: no link ${dev} in ${netns}: ${l.stderr.trim()}`);
      const r = await inNetns(netns, [process.execPath, '-e', DHCP_PROBE_JS, mac, o.release ? 'release' : 'keep'], { timeoutMs: 15_000 });
      if (r.exitCode !== 0) throw new Error(`dhcpProbe in ${netns} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
      return JSON.parse(r.stdout) as DhcpProbeResult;
    },
    async hostLookup(server, name) {
      const script =
        "const {Resolver}=require('node:dns').promises;const r=new Resolver({timeout:10000,tries:2});" +
        'r.setServers([process.argv[1]]);r.resolve4(process.argv[2]).then(a=>console.log(JSON.stringify(a)),e=>{console.error(String(e));process.exit(1)})';
      const r = await inNetns(host, [process.execPath, '-e', script, server, name], { timeoutMs: 10_000 });
      if (r.exitCode !== 0) throw new Error(`lookup of ${name} at ${server} failed: ${r.stderr.trim()}`);
      return JSON.parse(r.stdout) as string[];
    },
    async snapshot() {
      const json = async (argv: string[]): Promise<unknown> => {
        const r = await inNetns(host, argv);
        if (r.exitCode !== 0) throw new Error(`snapshot: ${argv.join(' ')} failed: ${r.stderr}`);
        return r.stdout.trim() === '' ? [] : JSON.parse(r.stdout);
      };
      const iptablesSave = async (tool: string): Promise<string> => {
        const r = await inNetns(host, [tool]);
        if (r.exitCode !== 0) throw new Error(`snapshot: ${tool} failed: ${r.stderr}`);
        return normalizeIptablesSave(r.stdout);
      };
      const [link, addr, route4, route6, rule4, rule6, nftR, sysR, ipt4, ipt6] = await Promise.all([
        json(['ip', '-j', 'link', 'show']),
        json(['ip', '-j', 'addr', 'show']),
        json(['ip', '-4', '-j', 'route', 'show', 'table', 'all']),
        json(['ip', '-6', '-j', 'route', 'show', 'table', 'all']),
        json(['ip', '-4', '-j', 'rule', 'show']),
        json(['ip', '-6', '-j', 'rule', 'show']),
        inNetns(host, ['nft', 'list', 'ruleset']),
        inNetns(host, ['sysctl', '-a']),
        opts.forwardDrop ? iptablesSave('iptables-save') : undefined,
        opts.forwardDrop ? iptablesSave('ip6tables-save') : undefined,
      ]);
      if (nftR.exitCode !== 0) throw new Error(`snapshot: nft list ruleset failed: ${nftR.stderr}`);
      return {
        ...(opts.forwardDrop ? { iptables: ipt4, ip6tables: ipt6 } : {}),
        link: stripVolatile(link),
        addr: stripVolatile(addr),
        route4: sortRoutes(route4),
        route6: sortRoutes(route6),
        rule4,
        rule6,
        nft: nftR.stdout,
        sysctl: parseSysctl(sysR.stdout),
      };
    },
    dnsQueries(gw, name) {
      let log = '';
      try {
        log = readFileSync(join(dir, `dnsmasq-${gw}.log`), 'utf8');
      } catch {
        return 0;
      }
      const needle = ` ${name} from `;
      return log.split('\n').filter((l) => /query\[[A-Z0-9]+\]/.test(l) && l.includes(needle)).length;
    },
    async setUplink(gw, up) {
      const dev = gw === 'fast' ? FAST_DEV : SLOW_DEV;
      const must = async (argv: string[]) => {
        const r = await inNetns(host, argv);
        if (r.exitCode !== 0) throw new Error(`setUplink: ${argv.join(' ')} failed: ${r.stderr.trim()}`);
      };
      if (!up) return must(['ip', 'link', 'set', dev, 'down']);
      await must(['ip', 'link', 'set', dev, 'up']);
      await waitFor(async () => {
        const r = await inNetns(host, ['ip', '-j', 'link', 'show', dev]);
        return (JSON.parse(r.stdout) as { operstate: string }[])[0]?.operstate === 'UP';
      }, `${dev} to come up`, 5000, 20);
      // IPv6 addresses go with the link (keep_addr_on_down=0); IPv4 ones stay.
      await must(['ip', '-6', 'addr', 'replace', `${gw === 'fast' ? HOST_FAST_ADDR6 : HOST_SLOW_ADDR6}/64`, 'dev', dev, 'nodad']);
      if (gw === 'fast') {
        await must(['ip', 'route', 'replace', 'default', 'via', FAST_GW, 'dev', FAST_DEV]);
        await must(['ip', '-6', 'route', 'replace', 'default', 'via', FAST_GW6, 'dev', FAST_DEV]);
      } else if (opts.slowIpv6Default) {
        await must(['ip', '-6', 'route', 'replace', 'default', 'via', SLOW_GW6, 'dev', SLOW_DEV, 'metric', '2048']);
      }
    },
    async gatewayPackets(gw) {
      const r = await inNetns(gw === 'fast' ? gwFast : gwSlow, ['nft', '-j', 'list', 'counters', 'table', 'inet', COUNTER_TABLE]);
      if (r.exitCode !== 0) throw new Error(`gatewayPackets(${gw}): nft failed: ${r.stderr}`);
      const out: GatewayPackets = { path4: 0, path6: 0, dns: 0, foreign: 0 };
      const parsed = JSON.parse(r.stdout) as { nftables: { counter?: { name: string; packets: number } }[] };
      for (const e of parsed.nftables) {
        if (e.counter && e.counter.name in out) out[e.counter.name as keyof GatewayPackets] = e.counter.packets;
      }
      return out;
    },
    async waitDnsQueries(gw, name, atLeast = 1, timeoutMs = 3000) {
      try {
        return await waitFor(() => {
          const n = world.dnsQueries(gw, name);
          return n >= atLeast ? n : 0;
        }, `${atLeast} ${gw} dnsmasq queries for ${name}`, timeoutMs);
      } catch {
        return world.dnsQueries(gw, name);
      }
    },
    netnsExists: (name) => existsSync(`/run/netns/${name}`),
    writeProfile(name, text) {
      const p = join(configDir, `${name}.toml`);
      writeFileSync(p, text);
      return p;
    },
    writeResolvConf(text) {
      writeFileSync(resolvConf, text);
    },
    writeResolvedConf(text) {
      if (text === null) rmSync(resolvedConf, { force: true });
      else writeFileSync(resolvedConf, text);
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      liveWorlds.delete(world);
      const problems = sweepPrefix(prefix, [...pids], dir);
      if (problems.length) throw new Error(`test world ${prefix}: teardown problems:\n${problems.join('\n')}`);
    },
  };
  liveWorlds.add(world);

  try {
    build(world);
    if (lan) buildLan(world, !!opts.lanBridge);
    if (opts.ipv6Forwarding) mustSync(['nsenter', `--net=/run/netns/${host}`, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    if (opts.slowIpv6Default) {
      mustSync(['ip', '-n', host, '-6', 'route', 'add', 'default', 'via', SLOW_GW6, 'dev', SLOW_DEV, 'metric', '2048']);
    }
    if (opts.rpFilter) {
      mustSync([
        'nsenter',
        `--net=/run/netns/${host}`,
        'sysctl',
        '-q',
        '-w',
        ...['all', 'default', 'lo', FAST_DEV, SLOW_DEV].map((i) => `net.ipv4.conf.${i}.rp_filter=1`),
      ]);
    }
    if (opts.forwardDrop) {
      // Debian 12's iptables is iptables-nft: this makes `table ip filter` / `table ip6 filter`
      // with a FORWARD chain of policy drop, inside the fake host only.
      mustSync(['nsenter', `--net=/run/netns/${host}`, 'iptables', '-P', 'FORWARD', 'DROP']);
      mustSync(['nsenter', `--net=/run/netns/${host}`, 'ip6tables', '-P', 'FORWARD', 'DROP']);
    }
    if (opts.nftForwardDrop) {
      // A native nftables firewall (a hardened /etc/nftables.conf; firewalld's forward chain
      // ends in a reject the same way): forward policy drop, in a table of its own.
      mustSync(['nsenter', `--net=/run/netns/${host}`, 'nft', '-f', '-'], NFT_FORWARD_DROP);
    }
    for (const gw of [gwFast, gwSlow]) mustSync(['nsenter', `--net=/run/netns/${gw}`, 'nft', '-f', '-'], COUNTER_RULESET);
    // Carrier reaches veths through linkwatch, up to a second later; IPv6 (and the snapshot's
    // operstate) wait for it.
    for (const ns of [host, gwFast, gwSlow]) {
      await waitFor(() => {
        const links = JSON.parse(mustSync(['ip', '-n', ns, '-j', 'link', 'show'])) as { ifname: string; operstate: string }[];
        return links.filter((l) => l.ifname !== 'lo').every((l) => l.operstate === 'UP');
      }, `links of ${ns} to come up`, 5000, 20);
    }
    await startServers(world, pids, baseEnv, { stub: !!opts.resolvedStub, lan, dhcp: !!opts.lanDhcp });
  } catch (e) {
    await world.destroy().catch(() => {});
    throw e;
  }
  return world;
}

const NFT_FORWARD_DROP = `table inet filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state invalid drop
	}
}
`;

function build(w: World): void {
  const { host, gwFast, gwSlow } = w;
  mustSync(['ip', '-batch', '-'], [host, gwFast, gwSlow].map((n) => `netns add ${n}`).join('\n') + '\n');
  // No DAD anywhere in the fake host, so link-local and global IPv6 addresses are usable at once
  // and the snapshot does not change while DAD completes.
  for (const ns of [host, gwFast, gwSlow]) {
    mustSync(['nsenter', `--net=/run/netns/${ns}`, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
  }
  mustSync(
    ['ip', '-n', host, '-batch', '-'],
    [
      'link set lo up',
      `link add ${FAST_DEV} type veth peer name lan0 netns ${gwFast}`,
      `link add ${SLOW_DEV} type veth peer name lan0 netns ${gwSlow}`,
      `addr add ${HOST_FAST_ADDR}/24 dev ${FAST_DEV}`,
      `addr add ${HOST_FAST_ADDR6}/64 dev ${FAST_DEV} nodad`,
      `addr add ${HOST_SLOW_ADDR}/24 dev ${SLOW_DEV}`,
      `addr add ${HOST_SLOW_ADDR6}/64 dev ${SLOW_DEV} nodad`,
      `link set ${FAST_DEV} up`,
      `link set ${SLOW_DEV} up`,
      `route add default via ${FAST_GW} dev ${FAST_DEV}`,
      `route add default via ${FAST_GW6} dev ${FAST_DEV}`,
      '',
    ].join('\n'),
  );
  // Both gateways serve the IPv6 path server too (the fake host's own IPv6 default is fast).
  for (const [gw, addr, addr6, extra] of [
    [gwFast, FAST_GW, FAST_GW6, [`addr add ${PATH_SERVER6}/128 dev lo nodad`]],
    [gwSlow, SLOW_GW, SLOW_GW6, [`addr add ${PATH_SERVER6}/128 dev lo nodad`]],
  ] as const) {
    mustSync(
      ['ip', '-n', gw, '-batch', '-'],
      [
        'link set lo up',
        `addr add ${PATH_SERVER}/32 dev lo`,
        `addr add ${DNS_SERVER}/32 dev lo`,
        ...extra,
        `addr add ${addr}/24 dev lan0`,
        `addr add ${addr6}/64 dev lan0 nodad`,
        'link set lan0 up',
        '',
      ].join('\n'),
    );
  }
}

// Option lan(Bridge): the second LAN, fake host LAN_DEV <-veth-> fast gateway LAN_GW_DEV.
function buildLan(w: World, bridged: boolean): void {
  const hostDev = bridged ? LAN_BRIDGE : LAN_DEV;
  mustSync(
    ['ip', '-n', w.host, '-batch', '-'],
    [
      `link add ${LAN_DEV} type veth peer name ${LAN_GW_DEV} netns ${w.gwFast}`,
      ...(bridged
        ? [`link add ${LAN_BRIDGE} address ${LAN_BRIDGE_MAC} type bridge`, `link set ${LAN_DEV} master ${LAN_BRIDGE}`, `link set ${LAN_BRIDGE} up`]
        : []),
      `addr add ${HOST_LAN_ADDR}/${LAN_PREFIX} dev ${hostDev}`,
      `link set ${LAN_DEV} up`,
      '',
    ].join('\n'),
  );
  mustSync(['ip', '-n', w.gwFast, '-batch', '-'], [`addr add ${LAN_GW}/${LAN_PREFIX} dev ${LAN_GW_DEV}`, `link set ${LAN_GW_DEV} up`, ''].join('\n'));
}

// Option lanDhcp: a DHCP-only dnsmasq (port=0: the gateway's DNS dnsmasq keeps port 53).
function dhcpArgv(w: World): string[] {
  return [
    ...dnsmasqBase(w, 'dhcp'),
    '--port=0',
    `--interface=${LAN_GW_DEV}`,
    `--dhcp-leasefile=${join(w.dir, 'dhcp.leases')}`,
    `--dhcp-range=${DHCP_FIRST},${DHCP_LAST},255.255.255.0,1h`,
    `--dhcp-option=option:router,${LAN_GW}`,
    `--dhcp-option=option:dns-server,${DNS_SERVER}`,
    '--dhcp-authoritative',
    // No ping of an address before offering it (up to 3 s per new lease).
    '--no-ping',
    '--log-dhcp',
    `--log-facility=${join(w.dir, 'dnsmasq-dhcp.log')}`,
  ];
}

// dnsmasq's DHCP log lines: `... dnsmasq-dhcp[PID]: [XID ]DHCPACK(lanb) 10.99.3.123 02:..:.. [host]`.
const DHCP_LINE_RE = /\b(DHCP[A-Z]+)\([^)]*\)(?: (\d+\.\d+\.\d+\.\d+))?(?: ([0-9a-f]{2}(?::[0-9a-f]{2}){5}))?/i;
export function parseDhcpLog(log: string): DhcpEvent[] {
  const out: DhcpEvent[] = [];
  for (const line of log.split('\n')) {
    const m = DHCP_LINE_RE.exec(line);
    if (m) out.push({ event: m[1]!.toUpperCase(), address: m[2] ?? null, mac: m[3]?.toLowerCase() ?? null, line });
  }
  return out;
}

// The minimal DHCP client of dhcpProbe(): argv MAC, release|keep. Broadcast flag set, so the
// server's answers come to 255.255.255.255:68 whatever address the probe's interface has.
const DHCP_PROBE_JS = `
const dgram = require('node:dgram');
const [mac, mode] = process.argv.slice(1);
const chaddr = Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
const xid = Math.floor(Math.random() * 0xffffffff) >>> 0;
const ip = (b, o) => [b[o], b[o + 1], b[o + 2], b[o + 3]].join('.');
const ipBuf = (a) => Buffer.from(a.split('.').map(Number));
function packet(type, opts, ciaddr) {
  const b = Buffer.alloc(240);
  b[0] = 1; b[1] = 1; b[2] = 6; b.writeUInt32BE(xid, 4);
  if (!ciaddr) b.writeUInt16BE(0x8000, 10); else ipBuf(ciaddr).copy(b, 12);
  chaddr.copy(b, 28); b.writeUInt32BE(0x63825363, 236);
  const o = [53, 1, type];
  for (const [code, val] of opts) o.push(code, val.length, ...val);
  o.push(255);
  return Buffer.concat([b, Buffer.from(o)]);
}
function parse(b) {
  if (b.length < 240 || b[0] !== 2 || b.readUInt32BE(4) !== xid || b.readUInt32BE(236) !== 0x63825363) return null;
  const opts = {};
  for (let i = 240; i < b.length && b[i] !== 255; ) {
    if (b[i] === 0) { i++; continue; }
    opts[b[i]] = b.subarray(i + 2, i + 2 + b[i + 1]); i += 2 + b[i + 1];
  }
  return { yiaddr: ip(b, 16), type: opts[53]?.[0], opts };
}
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
const fail = (m) => { console.error(m); process.exit(1); };
setTimeout(() => fail('no answer from a DHCP server'), 60000).unref();
let offer = null;
const send = (p, to) => s.send(p, 67, to);
s.on('error', (e) => fail(String(e)));
s.on('message', (b) => {
  const m = parse(b);
  if (!m) return;
  if (m.type === 2 && !offer) {
    offer = m;
    send(packet(3, [[50, [...ipBuf(m.yiaddr)]], [54, [...m.opts[54]]], [55, [1, 3, 6]]]), '255.255.255.255');
  } else if (m.type === 5 && offer) {
    const server = ip(m.opts[54], 0);
    const dns = [];
    for (let i = 0; m.opts[6] && i < m.opts[6].length; i += 4) dns.push(ip(m.opts[6], i));
    const res = { address: m.yiaddr, server, router: m.opts[3] ? ip(m.opts[3], 0) : null, dns, mac };
    const done = () => { console.log(JSON.stringify(res)); s.close(); };
    if (mode === 'release') send(packet(7, [[54, [...m.opts[54]]]], m.yiaddr), server), setTimeout(done, 100);
    else done();
  } else if (m.type === 6) fail('DHCPNAK');
});
s.bind(68, () => {
  s.setBroadcast(true);
  send(packet(1, [[55, [1, 3, 6]]]), '255.255.255.255');
});
`;

// What every dnsmasq of the world shares: in the foreground, no config or host files of the
// machine's, bound only to its own addresses, as root, its pid file in the world dir.
function dnsmasqBase(w: World, tag: string): string[] {
  return [
    'dnsmasq',
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--bind-interfaces',
    '--user=root',
    '--group=root',
    `--pid-file=${join(w.dir, `dnsmasq-${tag}.pid`)}`,
  ];
}

function dnsmasqArgv(w: World, tag: DnsServerTag, listen: readonly string[], answer: string): string[] {
  return [
    ...dnsmasqBase(w, tag),
    ...listen.map((a) => `--listen-address=${a}`),
    '--log-queries',
    `--log-facility=${join(w.dir, `dnsmasq-${tag}.log`)}`,
    `--address=/${PROBE_DOMAIN}/${answer}`,
  ];
}

async function startServers(
  w: World,
  pids: Set<number>,
  baseEnv: Record<string, string>,
  { stub, lan, dhcp }: { stub: boolean; lan: boolean; dhcp: boolean },
): Promise<void> {
  const servers: { ns: string; argv: string[]; proto: 'tcp' | 'udp'; addr: string; port: number }[] = [];
  for (const [gw, tag, linkAddr, answer] of [
    [w.gwFast, 'fast', FAST_GW, FAST_ANSWER],
    [w.gwSlow, 'slow', SLOW_GW, SLOW_ANSWER],
  ] as const) {
    servers.push({
      ns: gw,
      argv: ['socat', `TCP4-LISTEN:${PATH_PORT},bind=${PATH_SERVER},fork,reuseaddr`, `SYSTEM:echo ${tag} $SOCAT_PEERADDR`],
      proto: 'tcp',
      addr: PATH_SERVER,
      port: PATH_PORT,
    });
    servers.push({
      ns: gw,
      argv: dnsmasqArgv(w, tag, [DNS_SERVER, linkAddr], answer),
      proto: 'udp',
      addr: DNS_SERVER,
      port: 53,
    });
    servers.push({
      ns: gw,
      argv: ['socat', `TCP6-LISTEN:${PATH_PORT},bind=[${PATH_SERVER6}],fork,reuseaddr`, `SYSTEM:echo ${tag}6 $SOCAT_PEERADDR`],
      proto: 'tcp',
      addr: PATH_SERVER6,
      port: PATH_PORT,
    });
  }
  if (lan) {
    servers.push({
      ns: w.gwFast,
      argv: ['socat', `TCP4-LISTEN:${LAN_PATH_PORT},bind=${LAN_GW},fork,reuseaddr`, 'SYSTEM:echo lan $SOCAT_PEERADDR'],
      proto: 'tcp',
      addr: LAN_GW,
      port: LAN_PATH_PORT,
    });
  }
  if (dhcp) servers.push({ ns: w.gwFast, argv: dhcpArgv(w), proto: 'udp', addr: '0.0.0.0', port: 67 });
  if (stub) {
    servers.push({ ns: w.host, argv: dnsmasqArgv(w, 'stub', [STUB_ADDR], STUB_ANSWER), proto: 'udp', addr: STUB_ADDR, port: 53 });
  }
  const started = servers.map((s) => ({ s, p: spawnTracked(serverCommand(s.ns, s.argv), { baseEnv, timeoutMs: 24 * 3600_000 }, pids) }));
  for (const { s, p } of started) {
    let exited: RunResult | null = null;
    void p.result.then((r) => (exited = r));
    await waitFor(
      () => {
        if (exited) throw new Error(`server ${s.argv[0]} in ${s.ns} exited: ${JSON.stringify(exited)}`);
        return listening(s.ns, s.proto, s.addr, s.port);
      },
      `${s.argv[0]} in ${s.ns} to listen on ${s.addr}:${s.port}`,
      10_000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)} (stderr: ${p.stderr().trim()})`);
    });
  }
}

// Counters in each gateway namespace (never in the fake host): what arrived on lan0.
const COUNTER_TABLE = 'worldcount';
const COUNTER_RULESET = `table inet ${COUNTER_TABLE} {
	counter path4 {}
	counter path6 {}
	counter dns {}
	counter foreign {}
	chain prerouting {
		type filter hook prerouting priority -400; policy accept;
		iifname "lan0" meta nfproto ipv4 tcp dport ${PATH_PORT} counter name "path4"
		iifname "lan0" meta nfproto ipv6 tcp dport ${PATH_PORT} counter name "path6"
		iifname "lan0" meta l4proto { tcp, udp } th dport 53 counter name "dns"
		iifname "lan0" ip saddr != 10.99.0.0/16 counter name "foreign"
		iifname "lan0" ip6 saddr != { fd99::/16, fe80::/10, ::/128 } counter name "foreign"
	}
}
`;

// The kernel dumps routes with the same destination in the order they were added (fe80::/64 of
// upf and ups, say): an uplink taken down and up again moves its routes behind the other's.
// That order means nothing (metrics decide), so routes are compared as a sorted list.
function sortRoutes(v: unknown): unknown {
  if (!Array.isArray(v)) return v;
  return v
    .map((r) => [JSON.stringify(r), r] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, r]) => r as unknown);
}

// iptables-save without its dated comment lines and the chains' packet counters.
function normalizeIptablesSave(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
    .join('\n');
}

// Lifetimes count down and link state flags can flicker; neither is something nsroute changes.
function stripVolatile(v: unknown): unknown {
  if (!Array.isArray(v)) return v;
  return v.map((entry: Record<string, unknown>) => {
    const e = { ...entry };
    if (Array.isArray(e.addr_info)) {
      e.addr_info = (e.addr_info as Record<string, unknown>[]).map((a) => {
        const { valid_life_time: _v, preferred_life_time: _p, ...rest } = a;
        return rest;
      });
    }
    return e;
  });
}

// net.* sysctls of the fake host, minus values the kernel changes on its own.
const VOLATILE_SYSCTL = [/^net\.netfilter\.nf_conntrack_count$/, /\.stable_secret$/];
function parseSysctl(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(' = ');
    if (i < 0) continue;
    const k = line.slice(0, i);
    if (!(k.startsWith('net.ipv4.') || k.startsWith('net.ipv6.'))) continue;
    if (VOLATILE_SYSCTL.some((r) => r.test(k))) continue;
    out[k] = line.slice(i + 3);
  }
  return out;
}

