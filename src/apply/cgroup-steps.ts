import type { NamespaceConfig, Step } from '../plan/types.js';
import { CG_FAMILY, CG_TABLE, renderCgAdd, renderCgDelete, renderCgRuleset, type CgMember } from '../net/cgnft.js';
import { cgroup2Mount, cgroupOf, cgroupParent, cgroupProcs, makeCgroup, moveToCgroup, nftApplyCg, removeCgroup, removeCgroupIfUnused, requireCgroup2 } from '../sys/cgroup.js';
import { existsSync, lstatSync } from 'node:fs';
import { listDir } from '../sys/fsx.js';
import { run } from '../sys/run.js';
import { join, dirname } from 'node:path';
import { readMoves } from './moves.js';
import { tryRead, write as writeSysctl } from '../sys/sysctl.js';
import { readHostState, writeHostState } from '../state/store.js';

// Do and undo of cgroup mode's own steps (plan/cgroup.ts). Every undo succeeds when its
// object is gone already; the nft elements of the NAMEs that remain are re-rendered whole
// when a per-NAME transaction fails, as nat mode does for its table.

type CgStep = Extract<Step, { kind: 'cgroup-dir' | 'cgroup-localnet' | 'cgroup-nft' }>;

const localnetPath = (dev: string) => `conf/${dev}/route_localnet`;

// Saved before the first write (a crash right after it must still know what to put back).
function enableRouteLocalnet(dev: string): void {
  const now = tryRead(localnetPath(dev));
  if (now === undefined) return;
  const host = readHostState();
  if (host.routeLocalnet?.[dev] === undefined) writeHostState({ ...host, routeLocalnet: { ...host.routeLocalnet, [dev]: now } });
  if (now !== '1') writeSysctl(localnetPath(dev), '1');
}

function restoreRouteLocalnet(dev: string): void {
  const host = readHostState();
  const value = host.routeLocalnet?.[dev];
  if (value === undefined) return;
  const now = tryRead(localnetPath(dev));
  if (now !== undefined && now !== value) writeSysctl(localnetPath(dev), value);
  const rest = { ...host.routeLocalnet };
  delete rest[dev];
  writeHostState({ ...host, routeLocalnet: Object.keys(rest).length > 0 ? rest : undefined });
}

function memberOf(step: Extract<Step, { kind: 'cgroup-nft' }>): CgMember {
  return { path: step.path, ipv6: step.ipv6, ...(step.mark !== undefined ? { mark: step.mark } : {}), ...(step.dns ? { dns: step.dns } : {}) };
}

// The cgroup-mode NAMEs' elements, from their configs; a NAME whose cgroup directory is gone
// (being torn down) is left out: nft could not resolve its path.
export function cgMembers(configs: readonly NamespaceConfig[], mount: string): CgMember[] {
  return configs
    .filter((c) => c.mode === 'cgroup' && c.cgroup && existsSync(join(mount, c.cgroup.path)))
    .map((c) => ({ path: c.cgroup!.path, ipv6: c.ipv6 === 'nat' ? 'nat' : 'off', ...(c.uplink ? { mark: c.uplink.mark } : {}), ...(c.dns[0] ? { dns: c.dns[0] } : {}) }));
}

function renderAll(level: number, configs: readonly NamespaceConfig[], mount: string): Promise<void> {
  return nftApplyCg(renderCgRuleset(level, cgMembers(configs, mount)), mount);
}

export async function doCgroupStep(step: CgStep, self: NamespaceConfig | undefined, others: readonly NamespaceConfig[]): Promise<void> {
  if (step.kind === 'cgroup-localnet') return enableRouteLocalnet(step.dev);
  const mount = requireCgroup2();
  switch (step.kind) {
    case 'cgroup-dir':
      makeCgroup(mount, step.path);
      return;
    case 'cgroup-nft':
      try {
        await nftApplyCg(renderCgAdd(memberOf(step)), mount);
      } catch {
        await renderAll(step.level, [...others, ...(self ? [self] : [])], mount);
      }
      return;
  }
}

export async function undoCgroupStep(step: CgStep, name: string, others: readonly NamespaceConfig[]): Promise<void> {
  if (step.kind === 'cgroup-localnet') {
    if (!others.some((o) => o.mode === 'cgroup' && o.uplink?.dev === step.dev)) restoreRouteLocalnet(step.dev);
    return;
  }
  const mount = requireCgroup2();
  switch (step.kind) {
    case 'cgroup-dir': {
      // Members still inside (a command left running, `down --force` not given) go back to
      // the cgroup `move` took them from, else to the root: the directory cannot go otherwise.
      const moves = readMoves(name);
      for (const m of moves) {
        if (cgroupOf(m.pid) === step.path && m.from !== step.path && existsSync(join(mount, m.from))) {
          try {
            moveToCgroup(mount, m.from, m.pid);
          } catch {
            /* ended meanwhile */
          }
        }
      }
      if (!removeCgroup(mount, step.path)) throw new Error(`cgroup ${join(mount, step.path)} could not be removed (processes are still being added to it)`);
      if (!others.some((o) => o.cgroup && dirname(o.cgroup.path) === dirname(step.path))) removeCgroupIfUnused(mount, dirname(step.path));
      return;
    }
    case 'cgroup-nft': {
      const rest = others.filter((o) => o.mode === 'cgroup');
      if (rest.length === 0) return nftApplyCg(renderCgRuleset(step.level, []), mount);
      try {
        await nftApplyCg(renderCgDelete(memberOf(step)), mount);
      } catch {
        await renderAll(step.level, rest, mount);
      }
      return;
    }
  }
}


// gc (run dir lost, or leftovers of a crash its journal cannot tell): cgroup directories under
// nsroute's parent that no state names go when no process is in them (kept and reported
// otherwise: never pulled from under a running program); the cgroup table is made to match
// the states that remain; route_localnet goes back on uplinks no cgroup NAME uses.
export async function gcCgroups(configs: readonly NamespaceConfig[], report: { removed: { object: string; name: string }[]; kept: { name: string; reason: string }[] }): Promise<void> {
  const mount = cgroup2Mount();
  const cgs = configs.filter((c) => c.mode === 'cgroup' && c.cgroup);
  const host = readHostState();
  for (const dev of Object.keys(host.routeLocalnet ?? {})) {
    if (cgs.some((c) => c.uplink?.dev === dev)) continue;
    restoreRouteLocalnet(dev);
    report.removed.push({ object: 'sysctl', name: `${dev} route_localnet (restored)` });
  }
  if (!mount) return;
  let parent: string;
  try {
    parent = cgroupParent();
  } catch {
    return;
  }
  const root = join(mount, parent);
  for (const d of listDir(root)) {
    const rel = `${parent}/${d}`;
    let isDir = false;
    try {
      isDir = lstatSync(join(root, d)).isDirectory();
    } catch {
      /* gone */
    }
    if (!isDir || cgs.some((c) => c.cgroup!.path === rel)) continue;
    const procs = cgroupProcs(mount, rel);
    if (procs.length > 0) {
      report.kept.push({ name: d, reason: `cgroup ${join(mount, rel)} has no state but processes run in it (${procs.join(' ')}); \`nsroute move --out\` cannot tell where they came from: move them, then \`nsroute gc\`` });
      continue;
    }
    if (removeCgroup(mount, rel)) report.removed.push({ object: 'cgroup', name: join(mount, rel) });
  }
  if (cgs.length === 0) removeCgroupIfUnused(mount, parent);
  const { exitCode } = await run(['nft', 'list', 'table', CG_FAMILY, CG_TABLE], { allowFail: true });
  if (exitCode === 0 || cgs.length > 0) {
    await renderAll(cgs[0]?.cgroup?.level ?? 1, cgs, mount);
    if (cgs.length === 0) report.removed.push({ object: 'nft-table', name: `${CG_FAMILY} ${CG_TABLE}` });
  }
}
