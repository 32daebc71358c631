// nsroute benchmark (`npm run bench`, as root; `npm run bench -- --scale` adds N=1000, which
// takes long: every NAME is brought up by its own `nsroute up`). Everything runs inside a test
// world (test/world/world.ts): the real host's network is never touched, and the world is
// destroyed also on failure or ^C.
//
// Every timing row of issue 11's table is a ratio against a baseline measured in the same
// run, from interleaved pairs (A, B, A, B, ...): the median of the per-pair ratios A/B and
// their min-max, plus the medians of A and B in ms. Baselines:
//   - the hand-written recipe (netns, veth, addresses, routes, rule, nft masquerade,
//     resolv.conf, exec, teardown) as one shell script;
//   - `node -e 0`: the floor of any Node CLI;
//   - `sh -c 'node -e 0 && ip netns exec NAME true'`: the floor of a hot exec.
// Also, at N = 1 and 100 (and 1000 with --scale) persistent NAMEs: the host lock held per cold
// exec and the state files it read (NSROUTE_TRACE, src/sys/trace.ts), the RSS of all nsroute
// processes (watchers and their monitors), and the ip rules / nft rules (must not grow).
// Throughput (iperf3, when installed) through a NAME against the host's own, with 1 NAME and
// again after the largest N.
// Environment: BENCH_RUNS (pairs per row, default 10), BENCH_N (default "1,100").
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createWorld, DNS_SERVER, NSROUTE_JS, SLOW_GW, type RunResult, type World } from '../test/world/world.js';
import { kindOf, nsrouteProcesses } from '../test/world/procs.js';

const SCALE = process.argv.includes('--scale');
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const NS = (process.env.BENCH_N ?? (SCALE ? '1,100,1000' : '1,100')).split(',').map(Number).sort((a, b) => a - b);
const ROUTE = ['--via', SLOW_GW, '--dns', DNS_SERVER];

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function must(r: RunResult, what: string): RunResult {
  if (r.exitCode !== 0) throw new Error(`${what} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  return r;
}

async function ms(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

interface Pair {
  a: number; // median ms
  b: number;
  ratio: number; // median of per-pair a/b
  lo: number;
  hi: number;
}

// A, B, A, B, ... (one warm-up pair first, not counted).
async function pairs(a: () => Promise<unknown>, b: () => Promise<unknown>, runs = RUNS): Promise<Pair> {
  await a();
  await b();
  const as: number[] = [];
  const bs: number[] = [];
  const rs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const ta = await ms(a);
    const tb = await ms(b);
    as.push(ta);
    bs.push(tb);
    rs.push(ta / tb);
  }
  return { a: median(as), b: median(bs), ratio: median(rs), lo: Math.min(...rs), hi: Math.max(...rs) };
}

const rows: string[] = [];
function row(measure: string, value: string, target: string): void {
  const line = `${measure.padEnd(62)} ${value.padEnd(44)} ${target}`;
  rows.push(line);
  console.log(line);
}
function ratioText(p: Pair): string {
  return `${p.ratio.toFixed(2)}x (${p.lo.toFixed(2)}-${p.hi.toFixed(2)}) ${p.a.toFixed(0)}/${p.b.toFixed(0)} ms`;
}
function progress(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

// Every process of this world's nsroute (test/world/procs.ts, as the tests count them): the
// nsroute node processes with the world's run dir and their descendants (ip/nft monitors).
function nsrouteMemory(w: World): { pids: number[]; rssKiB: number; watchers: number } {
  const procs = nsrouteProcesses(w.runDir);
  return {
    pids: procs.map((p) => p.pid),
    rssKiB: procs.reduce((sum, p) => sum + p.rssKiB, 0),
    watchers: procs.filter((p) => /^watch( |$)/.test(kindOf(p))).length,
  };
}

// NSROUTE_TRACE lines (src/sys/trace.ts): {pid, t (ms), ev, ...}.
interface TraceEvent {
  pid: number;
  t: number;
  ev: string;
  op?: string;
}

// Host lock held (ms, summed over its takes), takes and state files read by one command.
function summarize(events: readonly TraceEvent[]): { held: number; sections: number; reads: number } {
  let held = 0;
  const since = new Map<number, number>();
  for (const e of events) {
    if (e.ev !== 'lock') continue;
    if (e.op === 'acquire') since.set(e.pid, e.t);
    else if (e.op === 'release' && since.has(e.pid)) {
      held += e.t - since.get(e.pid)!;
      since.delete(e.pid);
    }
  }
  return { held, sections: events.filter((e) => e.ev === 'lock' && e.op === 'acquire').length, reads: events.filter((e) => e.ev === 'state-read').length };
}

// cgroup mode (issue 12), against the seeds' recipe as one script (cgroup dir, nft mark rule,
// ip rule and route, masquerade, the process into the cgroup, teardown), and `move` of one
// process against the recipe's own move (`echo PID > cgroup.procs`). The world's cgroups live
// under its own parent (NSROUTE_CGROUP_PARENT) and are removed after.
async function cgroupRows(w: World): Promise<void> {
  const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => / - cgroup2 /.test(l))?.split(' ')[4];
  if (!mount) return progress('no cgroup v2: cgroup rows skipped');
  const parent = `${w.prefix}cg`;
  const env = { NSROUTE_CGROUP_PARENT: parent };
  const cg = w.name('cgc');
  const recipeDir = `${mount}/${parent}-hand`;
  const bind = mount === '/sys/fs/cgroup' ? 'nft -f -' : `unshare -m --propagation private sh -c 'mount --bind ${mount} /sys/fs/cgroup && nft -f -'`;
  const recipe = [
    'set -e',
    `mkdir ${recipeDir}`,
    `printf 'table inet hand { chain o { type route hook output priority mangle; socket cgroupv2 level 1 "${parent}-hand" meta mark set 0x77 ct mark set meta mark; }; chain p { type nat hook postrouting priority srcnat; meta mark 0x77 masquerade; }; }\\n' | ${bind}`,
    `ip route add default via ${SLOW_GW} table 77; ip rule add fwmark 0x77 lookup 77 pref 77`,
    `sh -c 'echo $$ > ${recipeDir}/cgroup.procs && exec true'`,
    'ip rule del pref 77; ip route flush table 77; nft delete table inet hand',
    `rmdir ${recipeDir}`,
  ].join('\n');
  try {
    const coldCg = async () => must(await w.nsroute(['exec', cg, '--mode', 'cgroup', ...ROUTE, '--', 'true'], { env }), 'cold exec cgroup');
    const viaCgRecipe = async () => must(await w.inHost(['sh', '-c', recipe]), 'cgroup recipe');
    row('cold exec NAME --mode cgroup --via GW -- true  vs  the cgroup recipe', ratioText(await pairs(coldCg, viaCgRecipe)), '<= 1.0x');
    const mv = w.name('cgm');
    must(await w.nsroute(['up', mv, '--mode', 'cgroup', ...ROUTE], { env }), 'up cgroup');
    const pidFile = join(w.dir, 'bench-sleeper.pid');
    const sleeper = w.inHost(['sh', '-c', `echo $$ > ${pidFile}; exec sleep 600`]);
    let pid = 0;
    for (let i = 0; i < 200 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 50));
      pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) || 0 : 0;
    }
    const moveIn = async () => must(await w.nsroute(['move', mv, String(pid)], { env }), 'move');
    const echoOut = async () => must(await w.inHost(['sh', '-c', `echo ${pid} > ${mount}/cgroup.procs`]), 'echo PID > cgroup.procs');
    row('move NAME PID (one process)  vs  echo PID > cgroup.procs', ratioText(await pairs(moveIn, echoOut)), 'report');
    process.kill(pid, 'SIGKILL');
    await sleeper;
    must(await w.nsroute(['down', mv, '--force'], { env }), 'down cgroup');
  } finally {
    await w.inHost(['sh', '-c', `rmdir ${recipeDir} ${mount}/${parent}/* ${mount}/${parent} 2>/dev/null; true`]);
  }
}

const world = await createWorld();
let interrupted = false;
let destroyed: Promise<void> | undefined;
const destroy = () => (destroyed ??= (progress('destroying the test world'), world.destroy()));
const onSignal = () => {
  interrupted = true;
  progress('interrupted');
  void destroy().finally(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
try {
  const w = world;
  const hand = w.name('hand');
  const handEtc = `/etc/netns/${hand}`;
  // Set up, one command in it, torn down: the recipe in three parts (the throughput rows keep
  // its namespace up while they measure through it).
  const recipeUp = [
    `ip netns add ${hand}`,
    `ip link add name h-veth type veth peer name eth0 netns ${hand}`,
    'ip addr add 10.250.0.1/30 dev h-veth; ip link set h-veth up',
    `ip -n ${hand} link set lo up; ip -n ${hand} addr add 10.250.0.2/30 dev eth0; ip -n ${hand} link set eth0 up`,
    `ip -n ${hand} route add default via 10.250.0.1`,
    `ip route add default via ${SLOW_GW} table 77; ip rule add from 10.250.0.0/30 lookup 77 pref 77`,
    "printf 'table ip hand { chain p { type nat hook postrouting priority srcnat; ip saddr 10.250.0.0/30 masquerade; }; }\\n' | nft -f -",
    `mkdir -p ${handEtc}; echo 'nameserver ${DNS_SERVER}' > ${handEtc}/resolv.conf`,
  ];
  const recipeDown = [`rm -r ${handEtc}; ip rule del pref 77; ip route flush table 77`, 'nft delete table ip hand; ip link del h-veth', `ip netns del ${hand}`];
  const recipe = ['set -e', ...recipeUp, `ip netns exec ${hand} true`, ...recipeDown].join('\n');
  const viaRecipe = async () => must(await w.inHost(['sh', '-c', recipe]), 'hand recipe');
  const nodeFloor = async () => must(await w.inHost(['node', '-e', '0']), 'node -e 0');
  const coldName = w.name('cold');
  const cold = async (env?: Record<string, string>) => must(await w.nsroute(['exec', coldName, ...ROUTE, '--', 'true'], env ? { env } : {}), 'cold exec');
  const hot = w.name('hot');
  const listJson = async () => must(await w.nsroute(['list', '--json']), 'list --json');

  // Cold execs with NSROUTE_TRACE: host lock held (sum of its sections) and state files read.
  const traced = async (runs = Math.max(3, Math.ceil(RUNS / 2))) => {
    const per: ReturnType<typeof summarize>[] = [];
    for (let i = 0; i < runs; i++) {
      const file = join(w.dir, 'bench-trace.jsonl');
      rmSync(file, { force: true });
      await cold({ NSROUTE_TRACE: file });
      per.push(summarize(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TraceEvent)));
    }
    const held = per.map((p) => p.held);
    return { held: median(held), lo: Math.min(...held), hi: Math.max(...held), sections: median(per.map((p) => p.sections)), reads: median(per.map((p) => p.reads)) };
  };
  const rules = async () => {
    const all = must(await w.inHost(['ip', 'rule', 'show']), 'ip rule').stdout.trim().split('\n');
    const blocks = all.filter((l) => /^\d+:\s+from \S+ unreachable/.test(l)).length;
    const t = await w.inHost(['nft', '-a', 'list', 'table', 'inet', 'nsroute']);
    const nft = t.stdout.split('\n').filter((l) => /# handle \d+$/.test(l) && !/^\s*(table|chain|set|map)\b/.test(l)).length;
    return `${all.length - blocks} ip rules + ${blocks} fail-closed block rules, ${nft} nft rules`;
  };

  progress(`world ${w.prefix} ready; ${RUNS} pairs per row; N = ${NS.join(', ')}`);
  console.log(`nsroute bench: ${RUNS} interleaved pairs per row; ratio = median of per-pair A/B (min-max), then median A/B in ms`);
  console.log(`${'measure'.padEnd(62)} ${'ratio (min-max) A/B ms'.padEnd(44)} target`);

  // N = 1: the persistent NAME `hot`, with its watcher.
  must(await w.nsroute(['up', hot, ...ROUTE]), 'up');
  const coldVsRecipe1 = await pairs(cold, viaRecipe);
  row('cold exec NAME --via GW -- true  vs  the recipe script', ratioText(coldVsRecipe1), '<= 1.0x');
  // What the tool runner (src/sys/runner.ts) saves: the same cold exec with every tool spawned
  // from Node itself.
  row('cold exec  vs  the same with NSROUTE_NO_RUNNER=1', ratioText(await pairs(cold, () => cold({ NSROUTE_NO_RUNNER: '1' }))), '< 1x (the runner helps)');
  const hotPair = await pairs(
    async () => must(await w.nsroute(['exec', hot, '--', 'true']), 'hot exec'),
    async () => must(await w.inHost(['sh', '-c', `node -e 0 && ip netns exec ${hot} true`]), 'hot baseline'),
  );
  row('hot exec NAME -- true  vs  node -e 0 && ip netns exec NAME true', ratioText(hotPair), '<= 1.15x');
  row('--version  vs  node -e 0', ratioText(await pairs(async () => must(await w.nsroute(['--version']), '--version'), nodeFloor)), '<= 1.2x');
  row('list --json with 1 NAME  vs  node -e 0', ratioText(await pairs(listJson, nodeFloor)), '<= 1.3x');

  // Throughput through a NAME vs the host straight to the gateway (iperf3, one stream, 3 s),
  // interleaved pairs. Measured with 1 NAME and again after the largest N: with one veth per
  // NAME the kernel's route lookup of a forwarded packet looks its input device up in a hash
  // of all the host's interfaces (l3mdev_update_flow), a cost that grows with N, not nsroute's.
  const hasIperf = (await w.inHost(['sh', '-c', 'command -v iperf3'])).exitCode === 0;
  const throughputRow = async (n: number, runs = 5) => {
    const measure = `N=${n}: throughput through a NAME  vs  the host straight to the gateway`;
    // With 1 NAME also through the recipe's namespace (the same veth, route and masquerade, by
    // hand): what forwarding through any namespace costs, against what nsroute adds to it.
    const viaRecipeToo = n === 1;
    const recipeMeasure = 'N=1: throughput through a NAME  vs  through the recipe\'s namespace';
    if (!hasIperf) {
      row(measure, 'skipped: iperf3 is not installed', '>= 0.95x');
      if (viaRecipeToo) row(recipeMeasure, 'skipped: iperf3 is not installed', 'report');
      return;
    }
    // iperf3 -s -1 serves one test and exits: one server per client run.
    const bps = (r: RunResult) => (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
    const through = async (client: () => Promise<RunResult>) => {
      const server = w.inNetns(w.gwSlow, ['iperf3', '-s', '-1', '-p', '5201']);
      await new Promise((r) => setTimeout(r, 500));
      const r = await client();
      await server;
      return bps(r);
    };
    const iperf = ['iperf3', '-c', SLOW_GW, '-p', '5201', '-t', '3', '-J'];
    const vsHost: number[] = [];
    const vsRecipe: number[] = [];
    if (viaRecipeToo) must(await w.inHost(['sh', '-c', ['set -e', ...recipeUp].join('\n')]), 'the recipe, set up');
    try {
      for (let i = 0; i < runs; i++) {
        const host = await through(async () => must(await w.inHost(iperf), 'iperf3 from the host'));
        const ns = await through(async () => must(await w.nsroute(['exec', hot, '--', ...iperf]), 'iperf3 through a NAME'));
        vsHost.push(ns / host);
        if (viaRecipeToo) vsRecipe.push(ns / (await through(async () => must(await w.inHost(['ip', 'netns', 'exec', hand, ...iperf]), "iperf3 through the recipe's namespace"))));
      }
    } finally {
      if (viaRecipeToo) await w.inHost(['sh', '-c', recipeDown.join('\n')]);
    }
    const text = (xs: number[]) => `${median(xs).toFixed(2)}x (${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}) ${runs} pairs`;
    row(measure, text(vsHost), '>= 0.95x');
    if (viaRecipeToo) row(recipeMeasure, text(vsRecipe), 'report');
  };
  await throughputRow(1);
  await cgroupRows(w);

  // A second persistent NAME tells whether watchers are shared (one for the host) or per NAME.
  must(await w.nsroute(['up', w.name('p0'), ...ROUTE]), 'up p0');
  await new Promise((r) => setTimeout(r, 1000));
  const perNameWatchers = nsrouteMemory(w).watchers > 1;
  if (perNameWatchers) progress('one watcher per NAME: the NAMEs beyond the first two are brought up with --no-watch (memory extrapolated)');
  must(await w.nsroute(['down', w.name('p0')]), 'down p0');

  let up = 1; // persistent NAMEs up: `hot`, then b0, b1, ...
  const bringUpTo = async (n: number) => {
    const t0 = Date.now();
    const start = up;
    const todo = Array.from({ length: n - up }, (_, i) => w.name(`b${start - 1 + i}`));
    let next = 0;
    // A few at a time: each `up` spends most of its time outside the host lock (Node start-up).
    const worker = async () => {
      while (next < todo.length && !interrupted) {
        const name = todo[next++]!;
        must(await w.nsroute(['up', name, ...ROUTE, ...(perNameWatchers ? ['--no-watch'] : [])]), `up ${name}`);
        up++;
        if (up % 25 === 0 || up === n) progress(`${up}/${n} NAMEs up (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    if (interrupted) throw new Error('interrupted');
  };

  const at: Record<number, { coldVsRecipe: Pair; trace: Awaited<ReturnType<typeof traced>>; rssKiB: number; procs: number }> = {};
  for (const n of NS) {
    if (n > 1) await bringUpTo(n);
    await new Promise((r) => setTimeout(r, 1000)); // watchers settle
    const mem = nsrouteMemory(w);
    const coldVsRecipe = n === 1 ? coldVsRecipe1 : await pairs(cold, viaRecipe);
    const trace = await traced();
    at[n] = { coldVsRecipe, trace, rssKiB: mem.rssKiB, procs: mem.pids.length };
    if (n > 1) {
      const base = at[NS[0]!]!.coldVsRecipe;
      const norm = coldVsRecipe.ratio / base.ratio;
      row(`N=${n}: one more cold exec  vs  the same at N=${NS[0]}`, `${norm.toFixed(2)}x (each vs the recipe: ${coldVsRecipe.ratio.toFixed(2)}x / ${base.ratio.toFixed(2)}x) ${coldVsRecipe.a.toFixed(0)}/${base.a.toFixed(0)} ms`, '<= 1.25x');
      row(`N=${n}: list --json  vs  node -e 0`, ratioText(await pairs(listJson, nodeFloor, Math.max(3, Math.ceil(RUNS / 2)))), '<= 2x');
    }
    const mib = mem.rssKiB / 1024;
    const memText = perNameWatchers && n > 2 ? `${mib.toFixed(0)} MiB measured (${mem.pids.length} processes, watchers only for 1 NAME); per-NAME watchers: ~${((at[NS[0]!]!.rssKiB / 1024) * n).toFixed(0)} MiB extrapolated` : `${mib.toFixed(0)} MiB in ${mem.pids.length} processes`;
    row(`N=${n}: memory of all nsroute processes (RSS sum)`, memText, '< 150 MiB, independent of N');
    row(`N=${n}: host lock held per cold exec`, `${trace.held.toFixed(0)} ms (${trace.lo.toFixed(0)}-${trace.hi.toFixed(0)}) in ${trace.sections} sections`, '<= 50 ms, independent of N');
    row(`N=${n}: state files read per cold exec`, `${trace.reads}`, 'each state once per command');
    row(`N=${n}: rules`, await rules(), 'ip/nft rules independent of N');
  }

  if (up > 1) await throughputRow(up);
  console.log(`bundle: ${NSROUTE_JS}${existsSync(NSROUTE_JS) ? '' : ' (missing)'}`);
} finally {
  if (!interrupted) await destroy();
}
