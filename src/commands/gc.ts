import { gc, reportIsEmpty } from '../apply/gc.js';
import type { SweepReport } from '../apply/lifecycle.js';
import { requireRoot } from './options.js';

function reportText(r: SweepReport): string {
  if (reportIsEmpty(r)) return 'nothing to clean up';
  const lines: string[] = [];
  for (const n of r.forgotten) lines.push(`forgot ${n} (left from before a reboot)`);
  for (const n of r.recovered) lines.push(`recovered ${n} (its state was missing; rebuilt from the kernel)`);
  for (const n of r.rolledBack) lines.push(`rolled back ${n} (an interrupted create)`);
  for (const n of r.finished) lines.push(`removed ${n} (an interrupted teardown, finished)`);
  for (const h of r.droppedHolders) lines.push(`dropped holder ${h.pid} of ${h.name} (process gone: ${h.command.join(' ').slice(0, 60)})`);
  for (const p of r.foundProcesses) lines.push(`kept ${p.name}: processes still run inside (${p.pids.join(' ')})`);
  for (const n of r.tornDown) lines.push(`removed ${n} (ephemeral, no longer used)`);
  for (const o of r.removed) lines.push(`removed leftover ${o.object} ${o.name}`);
  for (const k of r.kept) lines.push(`left ${k.name} alone: ${k.reason}`);
  if (r.watchers.length > 0) lines.push(`started the watcher again (for ${r.watchers.join(', ')})`);
  for (const f of r.failed) lines.push(`could not finish ${f.name} (kept for the next gc): ${f.error}`);
  return lines.join('\n');
}

// gc: make nsroute's records and the machine agree again after crashes, kills, reboots or a
// removed run dir. Safe to run at any time; never touches a namespace something still uses.
export async function runGc(opts: { json?: boolean }): Promise<number> {
  requireRoot();
  const report = await gc();
  process.stdout.write((opts.json ? JSON.stringify(report, null, 2) : reportText(report)) + '\n');
  return report.failed.length > 0 ? 1 : 0;
}
