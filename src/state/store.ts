import { closeSync, constants, lstatSync, openSync, renameSync, rmSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { NamespaceConfig } from '../plan/types.js';
import { HostError } from '../errors.js';
import { existsLstat, isTrustedSubdir, listDir, openTrustedFile, readTrustedFile, removeIfExists, writeAll, writeFileAtomic } from '../sys/fsx.js';
import { bootId } from '../sys/proc.js';
import { pauseNow } from '../apply/crash.js';
import { trace } from '../sys/trace.js';
import { ensureLibDir, ensureRunDir, ensureRunSubdir } from './dirs.js';
import { paths, runDir } from './paths.js';
import { hostLockGeneration } from './lockinfo.js';
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

// The same process: pid and start time.
export function sameHolder(a: Pick<Holder, 'pid' | 'startTime'>, b: Pick<Holder, 'pid' | 'startTime'>): boolean {
  return a.pid === b.pid && a.startTime === b.startTime;
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
  // The namespace nsroute created, as its journal records it (apply/views.ts ownNetnsInode):
  // in the state too, so that `list` finds the processes in it without reading the journal.
  // Absent in states written by older nsroute, and for host modes.
  netns?: { ino: number; ctime?: string };
}

// Test hook: told of every state file this process reads (the watcher's NSROUTE_TEST_WATCH_READS log).
let stateReadHook: ((name: string) => void) | undefined;
export function onStateRead(fn: ((name: string) => void) | undefined): void {
  stateReadHook = fn;
}

// Read only when root's alone (fsx.ts `readTrustedFile`): a state decides what is undone.
// Under the host lock each state file is read once per command (see the cache below).
export function readState(name: string): NamespaceState | undefined {
  if (cache && locked) {
    if (!cache.states.has(name)) {
      const file = readStateFile(name);
      cache.states.set(name, file && parseState(name, file.text));
      if (file) (cache.files ??= new Map()).set(name, file);
    }
    const st = cachedState(cache, name);
    return st === undefined ? undefined : structuredClone(st);
  }
  const file = readStateFile(name);
  return file && parseState(name, file.text);
}

// A state file as read: its text, and what identifies that version of it and of its
// directory (the index's check, below).
interface StateFile {
  text: string;
  sig: string;
}

// What identifies one version of a state file: root changing it by hand (an edit, chmod,
// chown, a copy put in its place) changes one of these too.
const sigOf = (file: Stats): string => `${file.ino}/${file.size}/${file.mtimeMs}/${file.ctimeMs}`;

// The signature NAME's state file has now; undefined when it is missing. `nsRoot`: paths.nsRoot(),
// given by a caller that checks many NAMEs: the index's check stats every state file, and
// path.join's normalising was a third of that (~8 ms of 25 at 1000 NAMEs); NAME is one
// directory entry of it (a validated name, or one listed in it).
function sigNow(name: string, nsRoot = paths.nsRoot()): string | undefined {
  const st = lstatSync(`${nsRoot}/${name}/state.json`, { throwIfNoEntry: false });
  return st && sigOf(st);
}

function readStateFile(name: string): StateFile | undefined {
  stateReadHook?.(name);
  ensureRunDir();
  if (!isTrustedSubdir(paths.nsRoot())) return undefined;
  if (!isTrustedSubdir(paths.nsDir(name))) return undefined;
  const f = openTrustedFile(paths.state(name));
  try {
    const text = f?.read();
    trace({ ev: 'state-read', name });
    return text === undefined ? undefined : { text, sig: sigOf(f!.stats!) };
  } finally {
    f?.close();
  }
}

// A full read's state of NAME: undefined when NAME has no state file (a NAME with just a
// journal adds nothing to what is shared, and its journal and directory are checked, and if
// untrusted reported, by its sweep). The run dir and ns/ are checked by the caller; NAME's
// directory is checked once the file is known to exist, as before it is read.
function readStateText(name: string): StateFile | undefined {
  const f = openTrustedFile(paths.state(name));
  if (!f) return undefined;
  try {
    stateReadHook?.(name);
    if (!isTrustedSubdir(paths.nsDir(name))) return undefined;
    const text = f.read();
    trace({ ev: 'state-read', name });
    return { text, sig: sigOf(f.stats!) };
  } finally {
    f.close();
  }
}

function parseState(name: string, text: string): NamespaceState {
  try {
    return JSON.parse(text) as NamespaceState;
  } catch (e) {
    throw new HostError(`state file ${paths.state(name)} is corrupt: ${(e as Error).message}`, `move it away; \`nsroute gc\` then undoes ${name} from its journal`);
  }
}

// A cached state; kept as its file's text until first asked for (a full read without the lock
// keeps texts: parsing one again is cheaper than copying an object, and most are never asked for).
function cachedState(c: Cache, name: string): NamespaceState | undefined {
  const v = c.states.get(name);
  if (typeof v !== 'string') return v;
  const st = parseState(name, v);
  c.states.set(name, st);
  return st;
}

let stateWrites = 0;

export function writeState(state: NamespaceState): void {
  ensureRunSubdir('ns', state.name);
  const gen = bumpGeneration();
  const text = JSON.stringify(state, null, 2) + '\n';
  pauseNow('state', stateWrites++);
  writeFileAtomic(paths.state(state.name), text, 0o600);
  if (gen === '?') dropGeneration();
  if (cache && locked) {
    cache.gen = gen;
    cache.unlockedAll = cache.unlockedStates = undefined;
    cache.states.set(state.name, structuredClone(state));
    const sig = cache.files && sigNow(state.name);
    if (sig) cache.files!.set(state.name, { text, sig });
    else cache.complete = false;
    if (cache.names && !cache.names.includes(state.name)) cache.names = [...cache.names, state.name].sort();
    cache.all = undefined;
    cache.dirty = true;
  } else cache = undefined;
}

// A cache of the run dir's states, served only while this process holds the host lock: every
// change of a state is made under that lock (by writeState and removeNamespaceDir, which
// update the cache), so nobody else changes one meanwhile. Without the lock (list's readers,
// exec's first look, the watcher between repairs) every read goes to the files, and a stale
// copy is never acted on; only a full read repeated without the lock is answered from the
// previous one, and only while the generation (below) says nobody wrote since. What it
// saves: at N namespaces every step's "what do the others need" (contextFor) read all N state
// files again (~9 N reads per cold exec).
//
// The cache also outlives a lock section when nothing changed in between: every writer bumps
// RUN/generation (a unique tag) before it changes a state, and a cache is kept only when the
// tag it was read under is still the current one when the lock is taken. So the states read
// at start-up (cli.ts loadIds, before the lock) are not read again under it, and a command
// with two lock sections (exec: create, then release) reads each state once in all.
interface Cache {
  gen: string; // RUN/generation when the cache was filled ('' when there was none)
  states: Map<string, NamespaceState | string | undefined>; // a string: the file's text (cachedState)
  names?: string[];
  all?: NamespaceState[];
  // A full read without the lock (the files' texts), for the next such read, and the states
  // it returned: the next such read returns those very objects again (`list` at 1000 NAMEs
  // parsed every state twice, ~7 ms: loadIds, then the listing). Shared, as a read under the
  // lock shares its objects: callers change a state only through writeState, on a copy.
  unlockedAll?: { name: string; text: string }[];
  unlockedStates?: NamespaceState[];
  // Each state file as read or as written by this process; with `complete`, that of every
  // NAME that has one (a full read filled it; writeState and removeNamespaceDir keep it so):
  // what the index (below) is written from, exactly what the files hold.
  files?: Map<string, StateFile>;
  complete?: boolean;
  // A state was written or removed in the current lock section.
  dirty?: boolean;
}
let cache: Cache | undefined;
let locked = false;

// In the run dir, not in ns/: ns/ holds one directory per NAME and nothing else.
function generationPath(): string {
  return join(runDir(), 'generation');
}

// '?' (a tag no cache has, so nothing is kept) when absent or unreadable.
function readGeneration(): string {
  try {
    return readTrustedFile(generationPath())?.trim() || '?';
  } catch {
    return '?';
  }
}

// Before a state changes (a writer killed half-way must not leave the old tag in place).
// Written by rename, so a reader never sees it torn; not fsynced: it only matters to processes
// running now, which share the page cache. '?' when it cannot be written (a full run dir):
// the caller then drops the tag once its change is made (dropGeneration), so that no cache
// anywhere is kept across it; a change that failed changed nothing, and the old tag stands.
function bumpGeneration(): string {
  // Unique per write for as long as any process that read an earlier tag runs (this boot):
  // no two writes share pid and monotonic time; Math.random on top for clocks that jump.
  // Not node:crypto, which takes ~6 ms to load for a tag nobody can exploit.
  const gen = `${process.pid.toString(36)}.${process.hrtime.bigint().toString(36)}.${Math.random().toString(36).slice(2, 10)}`;
  return replaceUnsynced(generationPath(), gen + '\n') ? gen : '?';
}

// Writes a file of the run dir that only processes running now read (the generation, the
// index): a fresh 0600 file renamed over it, so no reader sees it torn; no fsync (they share
// the page cache). false when it could not be written.
function replaceUnsynced(path: string, text: string): boolean {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    rmSync(tmp, { force: true });
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      writeAll(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    return true;
  } catch {
    rmSync(tmp, { force: true });
    return false;
  }
}

function dropGeneration(): void {
  try {
    rmSync(generationPath(), { force: true });
  } catch {
    /* readers that cannot read it keep no cache either */
  }
}

// Called by lock.ts once the host lock is taken; the returned function as the section ends,
// and what that returns once the lock is released.
export function beginStateSnapshot(): () => () => void {
  const gen = readGeneration();
  if (!cache || cache.gen !== gen || gen === '?') cache = { gen, states: new Map() };
  else if (cache.unlockedAll && cache.unlockedStates) {
    // The states a full read without the lock parsed are those very files (the generation has
    // not moved): not parsed again under the lock (at 1000 NAMEs the sweep's full read parsed
    // every one, ~7 ms of the section). unlockedStates[i] is unlockedAll[i] parsed.
    const parsed = cache.unlockedStates;
    cache.unlockedAll.forEach((t, i) => {
      if (typeof cache!.states.get(t.name) === 'string') cache!.states.set(t.name, parsed[i]);
    });
  }
  cache.dirty = false;
  locked = true;
  return () => {
    locked = false;
    const c = cache;
    // The states as this section left them, for the readers that come next (the index):
    // written after the lock is released (a take by someone else meanwhile moves the
    // generation on, and the index is then ignored).
    if (!c?.complete || !c.dirty || !c.names || !c.files || c.gen === '?' || c.gen === '') return () => undefined;
    const files = c.files;
    const at = { gen: c.gen, names: [...c.names], entries: c.names.flatMap((n) => (files.has(n) ? [{ name: n, ...files.get(n)! }] : [])) };
    return () => writeIndex(at.gen, at.names, at.entries);
  };
}

// RUN/states, the index: every state file's text as of one generation, so that a command
// reads one file instead of N (at 1000 NAMEs, 1000 opens were most of `list`). Written by the
// last lock section that changed a state (from what it knows of all of them), and by a full
// read without the lock that found none valid. Used only while it is exactly right:
//  - RUN/generation is still the one it names (every writer of a state moves it on first, and
//    no value comes back);
//  - ns/ lists the same NAMEs, and each state file is the very version it was made from.
// What it stands for is the state files' contents alone: every other file of a NAME (its
// journal) is read, and its directory checked, where it is used, as without the index.
// A cache: written without fsync; anything wrong with it (missing, torn, not root's alone)
// means the files are read instead.
interface IndexEntry extends StateFile {
  name: string;
}

function indexPath(): string {
  return join(runDir(), 'states');
}

// The file: a first line naming the format; a JSON line {gen, names, count}; then for each
// of `count` state files a line "NAME<TAB>SIG<TAB>LENGTH" and the file's text, LENGTH UTF-16
// units of it, as is; then "end". Not one JSON document: the texts would be strings in it,
// and unescaping them cost more than all the rest (at 1000 NAMEs, ~15 ms of `list`'s ~40 ms
// index read); here each text is a slice of the file's.
const INDEX_MAGIC = 'nsroute-states 2\n';
const INDEX_END = 'end\n';

function readIndex(gen: string): { names: string[]; entries: IndexEntry[] } | undefined {
  try {
    const text = readTrustedFile(indexPath());
    if (text === undefined || !text.startsWith(INDEX_MAGIC) || !text.endsWith(INDEX_END)) return undefined;
    let pos = INDEX_MAGIC.length;
    let nl = text.indexOf('\n', pos);
    if (nl < 0) return undefined;
    const head = JSON.parse(text.slice(pos, nl)) as { gen?: unknown; names?: unknown; count?: unknown };
    if (head.gen !== gen || !Array.isArray(head.names) || !Number.isSafeInteger(head.count)) return undefined;
    const names = head.names as unknown[];
    if (!names.every((n) => typeof n === 'string')) return undefined;
    const entries: IndexEntry[] = [];
    pos = nl + 1;
    const end = text.length - INDEX_END.length;
    while (pos < end) {
      nl = text.indexOf('\n', pos);
      if (nl < 0) return undefined;
      const [name, sig, lengthText, ...rest] = text.slice(pos, nl).split('\t');
      const length = Number(lengthText);
      if (!name || !sig || rest.length > 0 || !/^\d+$/.test(lengthText ?? '') || nl + 1 + length > end) return undefined;
      entries.push({ name, sig, text: text.slice(nl + 1, nl + 1 + length) });
      pos = nl + 1 + length;
    }
    if (pos !== end || entries.length !== head.count) return undefined;
    const nsRoot = paths.nsRoot();
    const now = listDir(nsRoot).filter((n) => !n.startsWith('.')).sort();
    if (now.length !== names.length || now.some((n, i) => n !== names[i])) return undefined;
    const listed = new Set(now);
    if (!entries.every((e) => listed.has(e.name) && sigNow(e.name, nsRoot) === e.sig)) return undefined;
    // A NAME listed without a state file (a journal alone) still has none.
    const withFile = new Set(entries.map((e) => e.name));
    if (!now.every((n) => withFile.has(n) || sigNow(n, nsRoot) === undefined)) return undefined;
    trace({ ev: 'state-index-read' });
    return { names: names as string[], entries };
  } catch {
    return undefined;
  }
}

function writeIndex(gen: string, names: string[], entries: IndexEntry[]): void {
  const parts = [INDEX_MAGIC, JSON.stringify({ gen, names, count: entries.length }), '\n'];
  for (const e of entries) parts.push(`${e.name}\t${e.sig}\t${e.text.length}\n`, e.text);
  parts.push(INDEX_END);
  replaceUnsynced(indexPath(), parts.join(''));
}

// Names with any state under the run dir (a state file or just a journal left by a crash).
export function knownNames(): string[] {
  if (cache?.names && locked) return [...cache.names];
  ensureRunDir();
  const names = isTrustedSubdir(paths.nsRoot()) ? listDir(paths.nsRoot()).filter((n) => !n.startsWith('.')).sort() : [];
  if (cache && locked) cache.names = names;
  return [...names];
}

// Only names with a state file: a NAME with just a journal adds nothing to what is shared,
// and its journal is checked (and, if untrusted, reported) by the sweep of that NAME. An
// untrusted state file makes every command refuse: what it describes is shared by all.
// The objects returned, and the array, are shared with later calls (under the lock, and
// without it while the generation stands; allStates and staleBootStates hand out filtered
// copies of the array): change a state only through writeState (readState gives a copy
// under the lock). The run dir and ns/ are checked once for all NAMEs (knownNames), not
// once per NAME: they are root's alone, so nobody else can change them in between.
function readAllStates(): NamespaceState[] {
  if (cache?.all && locked) return cache.all;
  if (locked && cache) {
    const c = cache;
    c.files ??= new Map();
    c.all = knownNames().flatMap((n) => {
      if (!c.states.has(n)) {
        // Only names with a state file; the others are not cached, so readState(n) still
        // checks n's directory (an untrusted one is reported by n's sweep).
        const file = readStateText(n);
        if (file === undefined) return [];
        c.states.set(n, parseState(n, file.text));
        c.files!.set(n, file);
      }
      const s = cachedState(c, n);
      return s ? [s] : [];
    });
    // Complete when every state read is one whose file is known.
    c.complete = [...c.states.keys()].every((n) => c.states.get(n) === undefined || c.files?.has(n));
    return c.all;
  }
  // Without the lock: read from the files, and kept (for the next lock section, and as the
  // index) only if nobody held the host lock at any time during the read: the host lock's
  // generation is the same, and not held, before and after. The run dir's generation alone
  // does not say that: a writer moves it on before its change, so a read that began after
  // the move and overlapped the change (a state file not yet replaced) was tagged with the
  // generation that stays once the change is made, and a later lock section of the same
  // process acted on what was no longer there (races.test.ts r7: an exec tore down the
  // namespace `up` had just made, read as a crashed create). A full read this process made
  // earlier without the lock stands while the generation has not moved (every writer bumps
  // it first): `list` read every state twice (loadIds, then the listing).
  const lockGen = hostLockGeneration();
  const before = existsLstat(paths.nsRoot()) ? readGeneration() : '';
  if (cache?.unlockedAll && cache.gen === before && before !== '?') {
    cache.unlockedStates ??= cache.unlockedAll.map((t) => parseState(t.name, t.text));
    return cache.unlockedStates;
  }
  // The index, when it is of this very generation (the run dir and ns/ checked as knownNames
  // checks them).
  const idx = before !== '' && before !== '?' && (ensureRunDir(), isTrustedSubdir(paths.nsRoot())) ? readIndex(before) : undefined;
  if (idx) {
    const files = new Map(idx.entries.map((e) => [e.name, { text: e.text, sig: e.sig }]));
    const parsed = idx.entries.map((e) => parseState(e.name, e.text));
    cache = { gen: before, states: new Map(idx.entries.map((e) => [e.name, e.text])), names: idx.names, unlockedAll: idx.entries, unlockedStates: parsed, files, complete: true };
    return parsed;
  }
  const names = knownNames();
  const entries: IndexEntry[] = [];
  const all = names.flatMap((n) => {
    const file = readStateText(n);
    if (file === undefined) return [];
    entries.push({ name: n, ...file });
    return [parseState(n, file.text)];
  });
  const after = existsLstat(paths.nsRoot()) ? readGeneration() : '';
  const files = new Map(entries.map((e) => [e.name, { text: e.text, sig: e.sig }]));
  const steady = before === after && before !== '?' && lockGen !== undefined && hostLockGeneration() === lockGen;
  cache = steady ? { gen: before, states: new Map(entries.map((e) => [e.name, e.text])), names, unlockedAll: entries, unlockedStates: all, files, complete: true } : undefined;
  if (cache && before !== '') writeIndex(before, names, entries);
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
  const gen = existsLstat(paths.nsRoot()) ? bumpGeneration() : '';
  removeIfExists(paths.nsDir(name));
  if (gen === '?') dropGeneration();
  if (cache && locked) {
    cache.gen = gen;
    cache.unlockedAll = cache.unlockedStates = undefined;
    cache.states.delete(name);
    cache.files?.delete(name);
    cache.names = cache.names?.filter((n) => n !== name);
    cache.all = undefined;
    cache.dirty = true;
  } else cache = undefined;
}

// Host-wide facts nsroute must put back when its last namespace goes. Valid for one boot
// only: after a reboot the kernel has its own values again, and restoring ours would
// overwrite what the admin configured for this boot.
export interface HostState {
  bootId?: string;
  forwarding?: { saved: Record<string, string> };
  forwarding6?: { saved: Record<string, string> };
  srcValidMark?: Record<string, string>; // per uplink device
  routeLocalnet?: Record<string, string>; // per uplink device of cgroup mode (apply/cgroup-steps.ts)
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
