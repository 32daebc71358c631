// The processes a world's nsroute leaves running (the host watcher and its two monitors), read
// from /proc: for tests (how many) and scripts/bench.ts, scripts/watch-mem.ts (how much memory). No vitest here.
import { readdirSync, readFileSync } from 'node:fs';
import { NSROUTE_JS } from './world.js';

export interface ProcMem {
  pid: number;
  ppid: number;
  rssKiB: number; // VmRSS
  argv: string[];
}

// Every process running `script` (dist/nsroute.js) with NSROUTE_RUN_DIR=runDir, plus all their
// descendants (a watcher's `ip monitor` and `nft monitor`), with VmRSS from /proc/PID/status.
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
    for (const p of all.values()) {
      if (!picked.has(p.pid) && picked.has(p.ppid)) {
        picked.add(p.pid);
        grew = true;
      }
    }
  }
  return [...picked].map((pid) => all.get(pid)!).sort((a, b) => a.pid - b.pid);
}

export function rssSumMiB(procs: readonly ProcMem[]): number {
  return procs.reduce((s, p) => s + p.rssKiB, 0) / 1024;
}

// What a process is, for counting: "watch" (an nsroute watch, names after it if any),
// "ip monitor", "nft monitor", or its argv.
export function kindOf(p: ProcMem, script = NSROUTE_JS): string {
  const i = p.argv.indexOf(script);
  if (i >= 0) return p.argv.slice(i + 1).filter((a) => a !== '--json').join(' ');
  const j = p.argv.findIndex((a) => a === 'ip' || a === 'nft' || a.endsWith('/ip') || a.endsWith('/nft'));
  return j >= 0 ? `${p.argv[j]!.replace(/.*\//, '')} ${p.argv[j + 1] ?? ''}` : p.argv.join(' ');
}
