// dist/nsroute.js: the small entry that starts the CLI (issue 11: start-up is most of what a
// short command costs). scripts/build.mjs bundles this file alone, as CommonJS, and the CLI
// itself (main.ts) as chunks in dist/chunks/: one per verb, one for commander, and the shared
// code, so a command compiles and evaluates only what it runs. This file:
//  - answers `--version` without loading any chunk;
//  - loads chunks itself, compiling each with V8's code cache (dist/chunks/NAME.js.cache,
//    made by the build or the package's postinst with writeCodeCaches below, never at run
//    time): with a cache V8 skips parsing and compiling what the cache holds.
// A cache is code, and nsroute runs as root: it is used only when it is a regular file owned
// by root and writable by nobody else (not a symlink), when its header names the exact bytes
// of the chunk it was made from (V8 itself checks little more than the source's length), and
// when V8 accepts it (same Node, same flags). Anything else compiles the chunk from source
// as if there were no cache: slower, never broken.
import { closeSync, constants, fstatSync, openSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { unsafeOwnerOrMode } from './sys/fsx.js';
import { writeStdout } from './sys/stdout.js';

// node:zlib's crc32, without loading node:zlib: its JS loads Node's stream modules (5-10 ms
// here, at every command that loads a chunk). It calls the zlib binding, which Node 20 still
// hands out through process.binding (documentation-only deprecated, DEP0111: it warns only
// with --pending-deprecation, and then node:zlib is used). Same function, same values
// (test/unit/loader.test.ts). Node before 20.15 has neither (zlib.crc32 came in 20.15, and
// package.json allows any Node 20): then no cache can be checked, and none is used.
type Crc32 = (data: Buffer) => number;
let crc32Fn: Crc32 | null | undefined;
function crc32Impl(): Crc32 | null {
  if (crc32Fn === undefined) {
    const native = bindingCrc32();
    crc32Fn = native === undefined ? zlibCrc32() : native;
  }
  return crc32Fn;
}

export function crc32(data: Buffer): number {
  const f = crc32Impl();
  if (!f) throw new Error(`nsroute: Node ${process.version} has no CRC-32 (node:zlib crc32, Node 20.15 and later): code caches cannot be made or checked`);
  return f(data);
}

// undefined: the binding could not be asked (then node:zlib is); null: it has no crc32.
function bindingCrc32(): Crc32 | null | undefined {
  if (process.execArgv.some((a) => a.includes('pending-deprecation')) || /pending[-_]deprecation/.test(process.env.NODE_OPTIONS ?? '')) return undefined;
  try {
    const binding = (process as unknown as { binding(name: string): { crc32?: unknown } }).binding('zlib');
    const native = binding.crc32;
    if (typeof native !== 'function') return null;
    return (d) => (native as (data: Buffer, value: number) => number)(d, 0);
  } catch {
    return undefined;
  }
}

function zlibCrc32(): Crc32 | null {
  const f = (require('node:zlib') as { crc32?: unknown }).crc32;
  return typeof f === 'function' ? (d) => (f as Crc32)(d) : null;
}

// Set by scripts/build.mjs.
declare const NSROUTE_VERSION: string;
declare const NSROUTE_MAIN_CHUNK: string;

const CHUNK_DIR = join(__dirname, 'chunks');
// Cache file: MAGIC; the CRC-32 and byte length of the chunk it was made from; the CRC-32 and
// byte length of V8's data (uint32 LE each: V8 does not check its data for damage, a torn or
// damaged file must not reach it); V8's data.
const MAGIC = Buffer.from('nsroute-code-cache-1\n');
const HEADER = MAGIC.length + 16;

// NSROUTE_TRACE_LOAD=1: one line on stderr per chunk loaded, how its cache was used and how
// long reading and compiling it took (for the tests that prove a verb loads only what it
// needs and that a bad cache is ignored, and for measuring).
const trace = process.env.NSROUTE_TRACE_LOAD === '1';

type CacheUse = 'none' | 'untrusted' | 'stale' | 'rejected' | 'uncheckable' | 'used';

interface Loaded {
  exports: Record<string, unknown>;
}
const loaded = new Map<string, Loaded>();

function chunkFile(id: string): string {
  // esbuild names them chunk-HASH.js / NAME-HASH.js, all in one directory.
  const m = /^\.\/([A-Za-z0-9_-]+\.js)$/.exec(id);
  if (!m) throw new Error(`nsroute: bad chunk name ${JSON.stringify(id)}`);
  return m[1]!;
}

function readTrustedCache(path: string): Buffer | 'none' | 'untrusted' {
  let fd: number;
  try {
    // Not through a symlink; O_NONBLOCK: a FIFO planted here must not hang the CLI.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'none' : 'untrusted';
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || unsafeOwnerOrMode(st)) return 'untrusted';
    return readFileSync(fd);
  } catch {
    return 'untrusted';
  } finally {
    closeSync(fd);
  }
}

function cacheFor(source: Buffer, path: string): { data?: Buffer; use: CacheUse } {
  if (!crc32Impl()) return { use: 'uncheckable' };
  const file = readTrustedCache(`${path}.cache`);
  if (typeof file === 'string') return { use: file };
  if (file.length <= HEADER || !file.subarray(0, MAGIC.length).equals(MAGIC)) return { use: 'stale' };
  const data = file.subarray(HEADER);
  const at = (i: number) => file.readUInt32LE(MAGIC.length + 4 * i);
  if (at(0) !== crc32(source) || at(1) !== source.length || at(2) !== crc32(data) || at(3) !== data.length) return { use: 'stale' };
  return { data, use: 'used' };
}

function compile(path: string, useCache: boolean): { script: Script; source: Buffer; use: CacheUse } {
  const source = readFileSync(path);
  const cache = useCache ? cacheFor(source, path) : { use: 'none' as CacheUse };
  // A chunk is ASCII (the build checks) and already wrapped as Node wraps a CommonJS module:
  // a function of (exports, require, module, __filename, __dirname).
  const script = new Script(source.toString('latin1'), { filename: path, cachedData: cache.data });
  return { script, source, use: cache.data && script.cachedDataRejected ? 'rejected' : cache.use };
}

function load(id: string, useCache = true): Loaded {
  const name = chunkFile(id);
  const done = loaded.get(name);
  if (done) return done;
  const path = join(CHUNK_DIR, name);
  const t0 = trace ? performance.now() : 0;
  const { script, use } = compile(path, useCache);
  if (trace) {
    // Timed before process.stderr is touched: a member call evaluates process.stderr (the first
    // use makes the stream, ~6 ms of Node's modules) before its argument, and the first chunk's
    // time showed that.
    const line = `nsroute: load ${name} cache=${use} compile=${(performance.now() - t0).toFixed(2)}ms\n`;
    process.stderr.write(line);
  }
  const module: Loaded = { exports: {} };
  loaded.set(name, module);
  const fn = script.runInThisContext() as (e: unknown, r: unknown, m: unknown, f: string, d: string) => void;
  fn.call(module.exports, module.exports, requireFrom(useCache), module, path, CHUNK_DIR);
  return module;
}

// A chunk requires its sibling chunks ("./chunk-HASH.js") and Node's built-in modules; the
// build checks that nothing else is left to require.
function requireFrom(useCache: boolean): (id: string) => unknown {
  return (id: string) => (id.startsWith('./') ? load(id, useCache).exports : require(id));
}

// For scripts/build.mjs and the package's postinst (as root, into the installed, root-owned
// chunks directory): write a cache for every chunk, made after evaluating it so that it holds
// what evaluation compiled too. Each file is written whole and renamed into place.
export async function writeCodeCaches(dir = CHUNK_DIR): Promise<string[]> {
  const written: string[] = [];
  // A Node without a CRC-32 (before 20.15) could not check them: none is made, nsroute works
  // without (the build and the installers go on).
  if (!crc32Impl()) {
    process.stderr.write(`nsroute: Node ${process.version} has no CRC-32 (node:zlib crc32, Node 20.15 and later): no code caches made; nsroute works without them, only starts slower\n`);
    return written;
  }
  const scripts = new Map<string, { script: Script; source: Buffer }>();
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.js')).sort()) {
    const path = join(dir, name);
    const { script, source } = compile(path, false);
    scripts.set(name, { script, source });
  }
  // Evaluate the chunks (module bodies only: the main chunk's start() is not called, no verb
  // runs) so that their caches include the functions evaluation compiles; a chunk another
  // already loaded is evaluated once.
  const local = new Map<string, Loaded>();
  const req = (id: string): unknown => {
    if (!id.startsWith('./')) return require(id);
    const name = chunkFile(id);
    const done = local.get(name);
    if (done) return done.exports;
    const entry = scripts.get(name);
    if (!entry) throw new Error(`writeCodeCaches: ${name} is not in ${dir}`);
    const module: Loaded = { exports: {} };
    local.set(name, module);
    const path = join(dir, name);
    (entry.script.runInThisContext() as (e: unknown, r: unknown, m: unknown, f: string, d: string) => void).call(module.exports, module.exports, req, module, path, dir);
    return module.exports;
  };
  for (const name of scripts.keys()) req(`./${name}`);
  // And what nearly every command runs around its verb (cli.ts warmUp).
  await (req(`./${NSROUTE_MAIN_CHUNK}`) as { warmUp: () => Promise<void> }).warmUp();
  for (const [name, { script, source }] of scripts) {
    const data = script.createCachedData();
    const header = Buffer.alloc(HEADER);
    MAGIC.copy(header);
    [crc32(source), source.length, crc32(data), data.length].forEach((v, i) => header.writeUInt32LE(v, MAGIC.length + 4 * i));
    const path = join(dir, `${name}.cache`);
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, Buffer.concat([header, data]), { mode: 0o644, flag: 'wx' });
    renameSync(tmp, path);
    written.push(path);
  }
  return written;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    // What commander prints for it, without loading commander, nor process.stdout (Node's
    // streams) for one line: written as list writes its output (sys/stdout.ts).
    writeStdout(`${NSROUTE_VERSION}\n`);
  } else {
    (load(`./${NSROUTE_MAIN_CHUNK}`).exports.start as () => void)();
  }
}
