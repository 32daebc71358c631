import type { NamespaceConfig } from '../plan/types.js';
import { HostError } from '../errors.js';
import { existsLstat, isTrustedSubdir, listDir, readTrustedFile, removeIfExists, writeFileAtomic } from '../sys/fsx.js';
import { bootId } from '../sys/proc.js';
import { ensureLibDir, ensureRunDir, ensureRunSubdir } from './dirs.js';
import { paths } from './paths.js';
import type { TakenOver } from '../sys/lan.js';

// A process using the namespace: pid + start time (pids are reused; the pair is not).
// 'exec': an `nsroute exec`/`shell` (the nsroute process itself, which outlives its command).
// 'process': a process found running inside with no live exec left, e.g. a daemon a command
// left behind, or a command whose nsroute was SIGKILLed. Absent in older states: 'exec'.
export interface Holder {
  pid: number;
  startTime: number;
  command: string[];
  user: string;
  since: string;
  kind?: 'exec' | 'process';
}

export type Status = 'creating' | 'up' | 'tearing-down';

export interface NamespaceState {
  version: 1;
  name: string;
  status: Status;
  persistent: boolean;
  createdAt: string;
  bootId: string;
  config: NamespaceConfig;
  holders: Holder[];
  // Written by older nsroute: the `nsroute watch NAME` its `up` started for this NAME alone.
  // Now one host watcher covers every persistent NAME; gc, up and down stop such a leftover.
  watcher?: { pid: number; startTime: number };
  noWatch?: boolean; // `up --no-watch`: the host watcher leaves NAME alone
}

// Whether NAME has a directory under the run dir; throws UntrustedFile when it, or the run
// dir or ns/ above it, could have been changed by someone other than root.
export function trustedNsDir(name: string): boolean {
  ensureRunDir();
  return isTrustedSubdir(paths.nsRoot()) && isTrustedSubdir(paths.nsDir(name));
}

// Test hook: told of every state file this process reads (the watcher's NSROUTE_TEST_WATCH_READS log).
let stateReadHook: ((name: string) => void) | undefined;
export function onStateRead(fn: ((name: string) => void) | undefined): void {
  stateReadHook = fn;
}

// Read only when root's alone (fsx.ts `readTrustedFile`): a state decides what is undone.
export function readState(name: string): NamespaceState | undefined {
  stateReadHook?.(name);
  if (!trustedNsDir(name)) return undefined;
  const text = readTrustedFile(paths.state(name));
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as NamespaceState;
  } catch (e) {
    throw new HostError(`state file ${paths.state(name)} is corrupt: ${(e as Error).message}`, `move it away; \`nsroute gc\` then undoes ${name} from its journal`);
  }
}

export function writeState(state: NamespaceState): void {
  ensureRunSubdir('ns', state.name);
  writeFileAtomic(paths.state(state.name), JSON.stringify(state, null, 2) + '\n', 0o600);
}

// Names with any state under the run dir (a state file or just a journal left by a crash).
export function knownNames(): string[] {
  ensureRunDir();
  if (!isTrustedSubdir(paths.nsRoot())) return [];
  return listDir(paths.nsRoot()).filter((n) => !n.startsWith('.')).sort();
}

// Only names with a state file: a NAME with just a journal adds nothing to what is shared,
// and its journal is checked (and, if untrusted, reported) by the sweep of that NAME. An
// untrusted state file makes every command refuse: what it describes is shared by all.
function readAllStates(): NamespaceState[] {
  return knownNames().flatMap((n) => {
    if (!existsLstat(paths.state(n))) return [];
    const s = readState(n);
    return s ? [s] : [];
  });
}

// Every namespace of this boot (what shares the nft table, uplinks and forwarding).
export function allStates(): NamespaceState[] {
  return readAllStates().filter((s) => !isFromEarlierBoot(s));
}

// States left from an earlier boot (the run dir is not always on a tmpfs).
export function staleBootStates(): NamespaceState[] {
  return readAllStates().filter(isFromEarlierBoot);
}

export function removeNamespaceDir(name: string): void {
  removeIfExists(paths.nsDir(name));
}

// Host-wide facts nsroute must put back when its last namespace goes. Valid for one boot
// only: after a reboot the kernel has its own values again, and restoring ours would
// overwrite what the admin configured for this boot.
export interface HostState {
  bootId?: string;
  forwarding?: { saved: Record<string, string> };
  forwarding6?: { saved: Record<string, string> };
  srcValidMark?: Record<string, string>; // per uplink device
  takeovers?: Record<string, TakenOver>; // interfaces taken into a bridge (bridge mode --uplink)
}

// host.json says which sysctls to write back and which interfaces to take out of a bridge:
// refused when not root's alone, and a corrupt one is an error, never silently {} (that
// would forget the saved values and overwrite them with nsroute's own).
export function readHostState(): HostState {
  ensureLibDir();
  const text = readTrustedFile(paths.host());
  if (text === undefined) return {};
  let h: HostState;
  try {
    h = JSON.parse(text) as HostState;
  } catch (e) {
    throw new HostError(`${paths.host()} is corrupt: ${(e as Error).message}`, 'it holds the sysctl values to put back: repair it by hand, or move it away');
  }
  return h.bootId === bootId() ? h : {};
}

export function writeHostState(h: HostState): void {
  const { bootId: _ignored, ...withUndefined } = h;
  const rest = Object.fromEntries(Object.entries(withUndefined).filter(([, v]) => v !== undefined));
  ensureLibDir();
  if (Object.keys(rest).length === 0) removeIfExists(paths.host());
  else writeFileAtomic(paths.host(), JSON.stringify({ ...rest, bootId: bootId() }, null, 2) + '\n', 0o600);
}

// States written before the last reboot describe kernel objects that no longer exist.
export function isFromEarlierBoot(st: NamespaceState): boolean {
  return st.bootId !== bootId();
}
