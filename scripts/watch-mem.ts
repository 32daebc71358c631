// Memory of nsroute's background processes with N persistent namespaces: `up` N NAMEs in a
// test world, wait until the watchers settle, then sum VmRSS of every process of this world's
// nsroute (node) and their descendants (the `ip monitor` / `nft monitor` of each watcher):
// test/world/procs.ts `nsrouteProcesses` + `rssSumMiB`.
// Usage (root): npx tsx scripts/watch-mem.ts 1 10 50   (NSROUTE_TEST_BIN=path/to/nsroute.js
// measures another build). Never touches the real host's network (test world only).
import { createWorld, SLOW_GW } from '../test/world/world.js';
import { kindOf, nsrouteProcesses, rssSumMiB } from '../test/world/procs.js';

async function main(): Promise<void> {
  const counts = process.argv.slice(2).map(Number);
  const w = await createWorld();
  try {
    let up = 0;
    for (const n of counts.length > 0 ? counts : [1, 10, 50]) {
      for (; up < n; up++) {
        const r = await w.nsroute(['up', w.name(`m${up}`), '--via', SLOW_GW]);
        if (r.exitCode !== 0) throw new Error(`up failed: ${r.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 3000)); // the watchers start and settle
      const procs = nsrouteProcesses(w.runDir);
      const kinds = new Map<string, number>();
      for (const p of procs) kinds.set(kindOf(p), (kinds.get(kindOf(p)) ?? 0) + 1);
      console.log(`N=${n}: ${procs.length} processes (${[...kinds].map(([k, c]) => `${c}x ${k}`).join(', ')}), RSS sum ${rssSumMiB(procs).toFixed(1)} MiB`);
      if (procs.length <= 6) for (const p of procs) console.log(`  ${p.pid} ${kindOf(p)}: ${(p.rssKiB / 1024).toFixed(1)} MiB`);
    }
    for (let i = 0; i < up; i++) await w.nsroute(['down', w.name(`m${i}`)]);
  } finally {
    await w.destroy();
  }
}

if (process.argv[1]?.endsWith('watch-mem.ts')) await main();
