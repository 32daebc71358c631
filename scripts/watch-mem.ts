// Memory of nsroute's background processes with N persistent namespaces: `up` N NAMEs in a
// test world, wait until the watchers settle, then sum VmRSS of every process of this world's
// nsroute (node) and their descendants (the `ip monitor` / `nft monitor` of each watcher):
// test/world/procs.ts `nsrouteProcesses` + `rssSumMiB`.
// Usage (root): npx tsx scripts/watch-mem.ts 1 10 50   (NSROUTE_TEST_BIN=path/to/nsroute.js
// measures another build; WATCH_MEM_EXECS=K also counts the CPU they spend on K cold execs of
// other NAMEs after the last N). Never touches the real host's network (test world only).
import { readFileSync } from 'node:fs';
import { createWorld, SLOW_GW } from '../test/world/world.js';
import { kindOf, nsrouteProcesses, rssSumMiB } from '../test/world/procs.js';

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    return 0;
  }
}

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
    // CPU the background processes spend on cold execs of other NAMEs (clock ticks, utime+stime).
    const execs = Number(process.env.WATCH_MEM_EXECS ?? 0);
    if (execs > 0) {
      const ticks = () => new Map(nsrouteProcesses(w.runDir).map((p) => [p.pid, cpuTicks(p.pid)]));
      const before = ticks();
      for (let i = 0; i < execs; i++) {
        const r = await w.nsroute(['exec', w.name(`e${i}`), '--via', SLOW_GW, '--', 'true']);
        if (r.exitCode !== 0) throw new Error(`exec failed: ${r.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 2000)); // debounced repairs finish
      const after = ticks();
      const spent = [...before].reduce((s, [pid, t]) => s + ((after.get(pid) ?? t) - t), 0);
      console.log(`${execs} cold execs of other NAMEs with N=${up}: background processes used ${spent} clock ticks of CPU (${(spent / execs / 100).toFixed(3)} s per exec at 100 Hz)`);
    }
    for (let i = 0; i < up; i++) await w.nsroute(['down', w.name(`m${i}`)]);
  } finally {
    await w.destroy();
  }
}

if (process.argv[1]?.endsWith('watch-mem.ts')) await main();
