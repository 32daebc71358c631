import type { NamespaceConfig } from '../plan/types.js';
import { HostError } from '../errors.js';
import { existsLstat, isTrustedSubdir, listDir, readTrustedFile, removeIfExists, writeFileAtomic } from '../sys/fsx.js';
import { bootId } from '../sys/proc.js';
import { traceCount } from './trace.js';
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
  // The `nsroute watch NAME` that `up` started for a persistent namespace (stopped at teardown).
  watcher?: { pid: number; startTime: number };
  noWatch?: boolean; // `up --no-watch`: gc does not start one either
}

// Whether NAME has a directory under the run dir; throws UntrustedFile when it, or the run
// dir or ns/ above it, could have been changed by someone other than root.
export function trustedNsDir(name: string): boolean {
  ensureRunDir();
  return isTrustedSubdir(paths.nsRoot()) && isTrustedSubdir(paths.nsDir(name));
}

// Read only when root's alone (fsx.ts `readTrustedFile`): a state decides what is undone.
// Within a snapshot (see below) each state file is read once per command.
export function readState(name: string): NamespaceState | undefined {
  if (snapshot) {
    if (!snapshot.states.has(name)) snapshot.states.set(name, readStateFile(name));
    const st = snapshot.states.get(name);
    return st === undefined ? undefined : structuredClone(st);
  }
  return readStateFile(name);
}

function readStateFile(name: string): NamespaceState | undefined {
  if (!trustedNsDir(name)) return undefined;
  const text = readTrustedFile(paths.state(name));
  traceCount('stateReads');
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
  if (snapshot) {
    snapshot.states.set(state.name, structuredClone(state));
    if (snapshot.names && !snapshot.names.includes(state.name)) snapshot.names = [...snapshot.names, state.name].sort();
    snapshot.all = undefined;
  }
}

// A per-command snapshot of the run dir's states, valid only while this process holds the
// host lock (lock.ts starts and ends it): every change of a state is made under that lock, so
// nobody else can change one meanwhile, and this process's own changes (writeState,
// removeNamespaceDir) update it. Without the lock (list's readers, the watcher between
// repairs, exec's first look) every read goes to the files: a stale copy is never acted on.
// What it saves: at N namespaces, every step's "what do the others need" (contextFor) read
// all N state files again, each behind two directory checks.
interface Snapshot {
  states: Map<string, NamespaceState | undefined>;
  names?: string[];
  all?: NamespaceState[];
}
let snapshot: Snapshot | undefined;

export function beginStateSnapshot(): () => void {
  const mine: Snapshot = { states: new Map() };
  const outer = snapshot;
  snapshot = mine;
  return () => {
    if (snapshot === mine) snapshot = outer;
  };
}

// Names with any state under the run dir (a state file or just a journal left by a crash).
export function knownNames(): string[] {
  if (snapshot?.names) return [...snapshot.names];
  ensureRunDir();
  const names = isTrustedSubdir(paths.nsRoot()) ? listDir(paths.nsRoot()).filter((n) => !n.startsWith('.')).sort() : [];
  if (snapshot) snapshot.names = names;
  return [...names];
}

// Only names with a state file: a NAME with just a journal adds nothing to what is shared,
// and its journal is checked (and, if untrusted, reported) by the sweep of that NAME. An
// untrusted state file makes every command refuse: what it describes is shared by all.
// In a snapshot, the objects returned are shared with later calls: change a state only
// through writeState.
function readAllStates(): NamespaceState[] {
  if (snapshot?.all) return snapshot.all;
  const all = knownNames().flatMap((n) => {
    if (snapshot) {
      if (!snapshot.states.has(n)) snapshot.states.set(n, existsLstat(paths.state(n)) ? readStateFile(n) : undefined);
      const s = snapshot.states.get(n);
      return s ? [s] : [];
    }
    if (!existsLstat(paths.state(n))) return [];
    const s = readStateFile(n);
    return s ? [s] : [];
  });
  if (snapshot) snapshot.all = all;
  return all;
}

// Every namespace of this boot (what shares the nft table, uplinks and forwarding).
export function allStates(): NamespaceState[] {
  const boot = bootId();
  return readAllStates().filter((s) => s.bootId === boot);
}

// States left from an earlier boot (the run dir is not always on a tmpfs).
export function staleBootStates(): NamespaceState[] {
  return readAllStates().filter(isFromEarlierBoot);
}

export function removeNamespaceDir(name: string): void {
  removeIfExists(paths.nsDir(name));
  if (snapshot) {
    snapshot.states.delete(name);
    snapshot.names = snapshot.names?.filter((n) => n !== name);
    snapshot.all = undefined;
  }
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
