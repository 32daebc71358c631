// Memory of nsroute's background processes with N persistent namespaces: `up` N NAMEs in a
// test world, wait until the watchers settle, then sum VmRSS of every process of this world's
// nsroute (node) and their descendants (the `ip monitor` / `nft monitor` of each watcher).
// Usage (root): npx tsx scripts/watch-mem.ts 1 10 50   (NSROUTE_TEST_BIN=path/to/nsroute.js
// measures another build). Never touches the real host's network (test world only).
import { readdirSync, readFileSync } from 'node:fs';
import { createWorld, NSROUTE_JS, SLOW_GW } from '../test/world/world.js';

export interface ProcMem {
  pid: number;
  ppid: number;
  rssKiB: number;
  argv: string[];
}

// Every nsroute process started with NSROUTE_RUN_DIR=runDir (the watchers `up` left
// running), plus all their descendants, with VmRSS from /proc/PID/status.
export function nsrouteProcesses(runDir: string, script = NSROUTE_JS): ProcMem[] {
  const all = new Map<number, ProcMem>();
  const roots: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const rssKiB = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      all.set(pid, { pid, ppid, rssKiB, argv });
      if (argv.includes(script) && readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`NSROUTE_RUN_DIR=${runDir}`)) roots.push(pid);
    } catch {
      /* gone meanwhile, or a kernel thread */
    }
  }
  const picked = new Set(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all.values()) if (!picked.has(p.pid) && picked.has(p.ppid)) (picked.add(p.pid), (grew = true));
  }
  return [...picked].map((pid) => all.get(pid)!);
}

export function rssSumMiB(procs: readonly ProcMem[]): number {
  return procs.reduce((s, p) => s + p.rssKiB, 0) / 1024;
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
      for (const p of procs) {
        const k = p.argv[0]?.endsWith('node') ? 'node' : `${p.argv[0]} ${p.argv[1] ?? ''}`;
        kinds.set(k, (kinds.get(k) ?? 0) + 1);
      }
      console.log(`N=${n}: ${procs.length} processes (${[...kinds].map(([k, c]) => `${c}x ${k}`).join(', ')}), RSS sum ${rssSumMiB(procs).toFixed(1)} MiB`);
    }
    for (let i = 0; i < up; i++) await w.nsroute(['down', w.name(`m${i}`)]);
  } finally {
    await w.destroy();
  }
}

if (process.argv[1]?.endsWith('watch-mem.ts')) await main();
