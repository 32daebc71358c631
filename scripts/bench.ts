// nsroute benchmark: run as root (`sudo npm run bench`). Builds a test world, never touches
// the real host's network. Prints medians and ratios against baselines measured in this run:
//   - `node -e 0` inside the fake host: the floor for any Node CLI,
//   - the hand-written recipe (ip netns add, veth, addresses, route, nft masquerade,
//     ip netns exec true, teardown) as one shell script: what people do by hand today.
// And the scaling claim: cold exec with 20 other namespaces up vs none, plus the number
// of ip rules and nft rules with 1 and 20 namespaces on one uplink (must not grow).
import { createWorld, NSROUTE_JS, SLOW_GW } from '../test/world/world.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timeIt(fn: () => Promise<unknown>, runs = RUNS): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(times);
}

function must(r: { exitCode: number | null; stderr: string }, what: string): void {
  if (r.exitCode !== 0) throw new Error(`${what} failed (${r.exitCode}): ${r.stderr}`);
}

const world = await createWorld();
try {
  const hand = world.name('hand');
  const recipe = [
    'set -e',
    `ip netns add ${hand}`,
    `ip link add name h-veth type veth peer name eth0 netns ${hand}`,
    'ip addr add 10.250.0.1/30 dev h-veth; ip link set h-veth up',
    `ip -n ${hand} link set lo up; ip -n ${hand} addr add 10.250.0.2/30 dev eth0; ip -n ${hand} link set eth0 up`,
    `ip -n ${hand} route add default via 10.250.0.1`,
    "printf 'table ip hand { chain p { type nat hook postrouting priority srcnat; ip saddr 10.250.0.0/30 masquerade; }; }\\n' | nft -f -",
    `ip netns exec ${hand} true`,
    'nft delete table ip hand; ip link del h-veth', `ip netns del ${hand}`,
  ].join('\n');

  const nodeFloor = await timeIt(async () => must(await world.inHost(['node', '-e', '0']), 'node -e 0'));
  const byHand = await timeIt(async () => must(await world.inHost(['sh', '-c', recipe]), 'hand recipe'));
  const cold = await timeIt(async () => must(await world.nsroute(['exec', world.name('b'), '--via', SLOW_GW, '--', 'true']), 'cold exec'));
  must(await world.nsroute(['up', world.name('w'), '--via', SLOW_GW]), 'up');
  const warm = await timeIt(async () => must(await world.nsroute(['exec', world.name('w'), '--', 'true']), 'warm exec'));

  // The watcher `up` started: time from deleting the uplink route, and from deleting nsroute's
  // nft table, to seeing them back (polled every 10 ms). Against the 2 s the watcher promises.
  const table = (JSON.parse((await world.nsroute(['status', world.name('w'), '--json'])).stdout) as { table: number }).table;
  const waitBack = async (check: () => Promise<boolean>) => {
    const t = process.hrtime.bigint();
    for (;;) {
      if (await check()) return Number(process.hrtime.bigint() - t) / 1e6;
      if (Number(process.hrtime.bigint() - t) > 10_000e6) throw new Error('not repaired within 10 s');
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const repairs = async (breakIt: () => Promise<void>, check: () => Promise<boolean>) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      await breakIt();
      times.push(await waitBack(check));
      await new Promise((r) => setTimeout(r, 300)); // let the watcher settle
    }
    return median(times);
  };
  const routeRepair = await repairs(
    async () => must(await world.inHost(['ip', 'route', 'del', 'default', 'via', SLOW_GW, 'table', String(table)]), 'route del'),
    async () => (await world.inHost(['ip', 'route', 'show', 'table', String(table)])).stdout.includes(`via ${SLOW_GW}`),
  );
  const nftRepair = await repairs(
    async () => must(await world.inHost(['nft', 'delete', 'table', 'inet', 'nsroute']), 'nft delete'),
    async () => (await world.inHost(['nft', 'list', 'table', 'inet', 'nsroute'])).exitCode === 0,
  );

  const count = async () => {
    const all = (await world.inHost(['ip', 'rule', 'show'])).stdout.trim().split('\n');
    // The fail-closed block rules (pref 4202) cover the namespaces' blocks aggregated: they may
    // grow with log2(N), the rest must not grow at all.
    const blocks = all.filter((l) => l.startsWith('4202:')).length;
    const rules = all.length - blocks;
    const nft = (await world.inHost(['nft', '-a', 'list', 'table', 'inet', 'nsroute'])).stdout.split('\n').filter((l) => /# handle \d+$/.test(l) && !/^\s*(table|chain|set|map)\b/.test(l)).length;
    return { rules, blocks, nft };
  };
  const with1 = await count();
  for (let i = 0; i < 19; i++) must(await world.nsroute(['up', world.name(`m${i}`), '--via', SLOW_GW]), 'up many');
  const with20 = await count();
  const coldMany = await timeIt(async () => must(await world.nsroute(['exec', world.name('b'), '--via', SLOW_GW, '--', 'true']), 'cold exec with 20 up'));

  const ms = (x: number) => `${x.toFixed(1)} ms`;
  console.log(`runs per measurement: ${RUNS} (medians)`);
  console.log(`baseline node -e 0 (fake host):        ${ms(nodeFloor)}`);
  console.log(`baseline hand-written recipe:          ${ms(byHand)}`);
  console.log(`nsroute exec, cold (create+teardown):  ${ms(cold)}   ratio vs hand recipe ${(cold / byHand).toFixed(2)}, vs node floor ${(cold / nodeFloor).toFixed(2)}`);
  console.log(`nsroute exec, warm (namespace up):     ${ms(warm)}   ratio vs node floor ${(warm / nodeFloor).toFixed(2)}`);
  console.log(`nsroute exec, cold, 20 others up:      ${ms(coldMany)}   ratio vs none up ${(coldMany / cold).toFixed(2)}`);
  console.log(`watch: deleted route back after:      ${ms(routeRepair)}   ratio vs the 2 s promised ${(routeRepair / 2000).toFixed(2)}`);
  console.log(`watch: deleted nft table back after:   ${ms(nftRepair)}   ratio vs the 2 s promised ${(nftRepair / 2000).toFixed(2)}`);
  console.log(`ip rules / nft rules, 1 namespace:     ${with1.rules} / ${with1.nft}   + ${with1.blocks} fail-closed block rule(s)`);
  console.log(`ip rules / nft rules, 20 namespaces:   ${with20.rules} / ${with20.nft}   (same uplink: must not grow)   + ${with20.blocks} fail-closed block rule(s) (at most log2(N)+1)`);
  console.log(`bundle: ${NSROUTE_JS}`);
} finally {
  await world.destroy();
}
