// Small assertions and command lines shared by the integration tests.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { createWorld, LAN_GW, LAN_PATH_PORT, PATH_PORT, PATH_SERVER, PATH_SERVER6, waitFor, type GatewayPackets, type RunResult, type Snapshot, type World, type WorldOptions } from './world.js';

// The host watcher's pid, from its record in RUN/watch.lock, while that very process runs (pid
// and start time): the file outlives the watcher, and a pid can be reused.
export function hostWatcherPid(w: World): number | undefined {
  try {
    const rec = JSON.parse(readFileSync(join(w.runDir, 'watch.lock'), 'utf8') || 'null') as { pid: number; startTime: number } | null;
    if (!rec) return undefined;
    const stat = readFileSync(`/proc/${rec.pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) === rec.startTime ? rec.pid : undefined;
  } catch {
    return undefined;
  }
}

// Ask the path server which uplink we came through ("fast 10.99.1.2" / "slow 10.99.2.2").
// connect-timeout: a dropped SYN must fail the probe in seconds, not after the kernel's ~2 min.
export const PATH4 = ['socat', '-T20', '-t20', '-', `TCP4:${PATH_SERVER}:${PATH_PORT},connect-timeout=4`];
export const PATH6 = ['socat', '-T20', '-t20', '-', `TCP6:[${PATH_SERVER6}]:${PATH_PORT},connect-timeout=4`];
// Worlds with option lan: the LAN server on the fast gateway's LAN address ("lan 10.99.3.x").
export const LAN_PATH4 = ['socat', '-T20', '-t20', '-', `TCP4:${LAN_GW}:${LAN_PATH_PORT},connect-timeout=4`];

// What a gateway received between two readings of gatewayPackets().
export function delta(before: GatewayPackets, after: GatewayPackets): GatewayPackets {
  return {
    path4: after.path4 - before.path4,
    path6: after.path6 - before.path6,
    dns: after.dns - before.dns,
    foreign: after.foreign - before.foreign,
  };
}
export const NOTHING: GatewayPackets = { path4: 0, path6: 0, dns: 0, foreign: 0 };

// What a test prints on failure: the whole result, so product bugs are readable in the log.
export function show(r: RunResult): string {
  return `exit=${r.exitCode} signal=${r.signal}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

export function expectOk(r: RunResult): void {
  expect(r.exitCode, show(r)).toBe(0);
}

// Bad input: the given exit code and exactly one stderr line starting with "nsroute: ".
export function expectUserError(r: RunResult, code: number): void {
  expect(r.exitCode, show(r)).toBe(code);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, show(r)).toHaveLength(1);
  expect(lines[0], show(r)).toMatch(/^nsroute: \S/);
}

// A shell script that marks itself ready, then runs until a stop file appears.
export function holdScript(ready: string, stop: string, code = 0): string[] {
  return ['sh', '-c', `touch '${ready}'; while [ ! -e '${stop}' ]; do sleep 0.05; done; exit ${code}`];
}

export function marker(w: World, name: string): string {
  return join(w.dir, name);
}

export async function waitForFile(path: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(() => existsSync(path), `file ${path}`, timeoutMs);
}

export function readIfExists(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

// `getent ahostsv4 NAME` output -> the distinct addresses.
export function ahostsAddresses(stdout: string): string[] {
  return [...new Set(stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((a): a is string => !!a))];
}

// Unique probe names, so counting dnsmasq log lines per test is exact.
let probeSeq = 0;
export function probeName(tag: string): string {
  probeSeq += 1;
  return `${tag}${probeSeq}-${process.pid}.probe.test`;
}

export interface StatusJson {
  name: string;
  up: boolean;
  status: 'up' | 'stale' | 'interrupted' | 'untracked';
  needsGc: boolean;
  persistent: boolean;
  mode: string;
  holders: { pid: number; startTime: number; command: string[]; user: string; since: string; kind: 'exec' | 'process' }[];
  hostInterface: string;
  namespaceInterface: string;
  subnet: string;
  hostAddress: string;
  namespaceAddress: string;
  gateway: string | null;
  dev: string | null;
  table: number | null;
  dns: string[];
  dnsSource: string;
  createdAt: string | null;
}

export async function statusJson(w: World, name: string): Promise<StatusJson> {
  const r = await w.nsroute(['status', name, '--json']);
  expect(r.exitCode, show(r)).toBe(0);
  return JSON.parse(r.stdout) as StatusJson;
}

// One world per test file, built before its tests (with a snapshot of the clean fake host)
// and destroyed after them, also when they fail.
export function useWorld(set: (w: World, clean: Snapshot) => void, opts?: WorldOptions): void {
  let world: World | undefined;
  beforeAll(async () => {
    world = await createWorld(opts);
    set(world, await world.snapshot());
  });
  afterAll(async () => {
    await world?.destroy();
  });
}
