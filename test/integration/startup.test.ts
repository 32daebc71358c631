// Start-up (issue 11): a command loads only the chunks it needs (src/loader.ts, scripts/build.mjs),
// and a V8 code cache is used only when it is trustworthy and made from the exact chunk it
// sits next to; anything else is ignored and the CLI works as before. What loaded is read
// from the loader's own trace (NSROUTE_TRACE_LOAD=1: one stderr line per chunk, with how its
// cache was used), what a chunk holds from dist/chunks.json (the build's list of the sources
// in each chunk). Properties, not timings: the timings are `npm run bench`'s.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, SLOW_GW, waitFor, type World } from '../world/world.js';
import { expectOk, hostWatcherPid, show, useWorld } from '../world/helpers.js';

const DIST = join(REPO_ROOT, 'dist');
const chunkInputs = JSON.parse(readFileSync(join(DIST, 'chunks.json'), 'utf8')) as Record<string, string[]>;
const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
// Packages a command that only parses its command line or lists must not load.
const HEAVY = /node_modules\/(execa|ip-cidr|ip-address|jsbn|smol-toml)\//;

interface Load {
  chunk: string;
  cache: string;
}

function loadsOf(stderr: string): Load[] {
  return [...stderr.matchAll(/^nsroute: load (\S+) cache=(\S+) /gm)].map((m) => ({ chunk: m[1]!, cache: m[2]! }));
}

function traced(bin: string, args: string[], nodeArgs: string[] = []) {
  const r = spawnSync(process.execPath, [...nodeArgs, bin, ...args], { encoding: 'utf8', env: { ...process.env, NSROUTE_TRACE_LOAD: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, loads: loadsOf(r.stderr) };
}

// A result without the loader's trace lines: what two ways of running a command must share.
function withoutLoads(r: { exitCode: number | null; stdout: string; stderr: string }) {
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr.replace(/^nsroute: load .*\n/gm, '') };
}

function sourcesOf(loads: Load[]): string[] {
  return loads.flatMap((l) => {
    const inputs = chunkInputs[l.chunk];
    if (!inputs) throw new Error(`${l.chunk} is not in dist/chunks.json`);
    return inputs;
  });
}

function ours(sources: string[]): string[] {
  return sources.filter((s) => s.startsWith('src/'));
}

describe('what a command loads', () => {
  it('--version and -V print the version and load no chunk', () => {
    for (const flag of ['--version', '-V']) {
      const r = traced(join(DIST, 'nsroute.js'), [flag]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
      expect(r.loads).toEqual([]);
    }
  });

  it('--help of the program and of a verb loads commander and the definitions only, each from its code cache', () => {
    for (const args of [['--help'], ['exec', '--help'], ['list', '--help'], ['bogus']]) {
      const r = traced(join(DIST, 'nsroute.js'), args);
      expect(r.loads.length, r.stderr).toBeGreaterThan(0);
      const sources = sourcesOf(r.loads);
      expect(sources.filter((s) => HEAVY.test(s)), args.join(' ')).toEqual([]);
      expect(ours(sources).sort(), args.join(' ')).toEqual(['src/cli.ts', 'src/commands/examples.ts', 'src/commands/route-options.ts', 'src/errors.ts', 'src/exit.ts', 'src/fastpath.ts', 'src/main.ts', 'src/state/paths.ts', 'src/sys/caps.ts']);
      expect(sources.some((s) => /node_modules\/commander\//.test(s))).toBe(true);
      expect(r.loads.filter((l) => l.cache !== 'used'), r.stderr).toEqual([]);
    }
  });

  it('a completion at TAB time loads no code that changes the system', () => {
    const r = traced(join(DIST, 'nsroute.js'), ['__complete', 'name']);
    expect(r.status, r.stderr).toBe(0);
    const sources = ours(sourcesOf(r.loads));
    expect(sources.filter((s) => /^src\/(apply|sys\/(run|ip|nft|command))/.test(s))).toEqual([]);
    expect(sourcesOf(r.loads).filter((s) => /node_modules\/execa\//.test(s))).toEqual([]);
  });
});

describe('list with a NAME up', () => {
  let w: World;
  useWorld((world) => (w = world));

  it('loads list and what it runs, not the other verbs', async () => {
    const n = w.name('st');
    expectOk(await w.nsroute(['up', n, '--via', SLOW_GW, '--no-watch']));
    try {
      const r = await w.nsroute(['list', '--json'], { env: { NSROUTE_TRACE_LOAD: '1' } });
      expectOk(r);
      expect((JSON.parse(r.stdout) as { name: string }[]).map((s) => s.name)).toContain(n);
      const loads = loadsOf(r.stderr);
      const sources = ours(sourcesOf(loads));
      expect(sources, show(r)).toContain('src/commands/list.ts');
      for (const verb of ['exec', 'up', 'down', 'check', 'doctor', 'units', 'watch', 'gc', 'completion-cmd', 'options']) {
        expect(sources, verb).not.toContain(`src/commands/${verb}.ts`);
      }
      expect(sources.filter((s) => /^src\/(doctor|check|profile|systemd)\//.test(s) || s === 'src/apply/watch.ts')).toEqual([]);
      // The lock-free read (apply/views.ts) needs no planner, executors, ip-cidr or execa.
      expect(sourcesOf(loads).filter((s) => HEAVY.test(s) && !/smol-toml/.test(s)), show(r)).toEqual([]);
      expect(sources.filter((s) => /^src\/(plan|apply\/(lifecycle|apply|executors))/.test(s) || s === 'src/sys/ip.ts'), show(r)).toEqual([]);
      expect(loads.filter((l) => l.cache !== 'used'), show(r)).toEqual([]);
      // `list` and `list --json` are answered without commander (src/fastpath.ts)...
      expect(sourcesOf(loads).filter((s) => /node_modules\/commander\//.test(s) || s === 'src/cli.ts'), show(r)).toEqual([]);
      // It runs no tool and prints with write(2): neither the tool runner nor node:child_process
      // nor Node's stream modules (process.stdout's) are loaded, ~10 ms of a ~120 ms list.
      expect(sources.filter((s) => s === 'src/sys/runner.ts' || s === 'src/sys/run.ts'), show(r)).toEqual([]);
      const preload = join(w.dir, 'builtins.cjs');
      writeFileSync(preload, "process.on('exit', () => require('fs').writeSync(2, 'builtins: ' + process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).join(',') + '\\n'));\n");
      const b = await w.inHost([process.execPath, '-r', preload, w.bin, 'list', '--json']);
      expectOk(b);
      const builtins = /^builtins: (.*)$/m.exec(b.stderr)?.[1]?.split(',') ?? [];
      expect(builtins, show(b)).toContain('NativeModule fs');
      expect(builtins.filter((m) => /^NativeModule (child_process|stream|net|zlib)$/.test(m)), show(b)).toEqual([]);
      // ...and say what commander's path says (`--` sends it there; it changes nothing).
      for (const args of [['list', '--json'], ['list']]) {
        const fast = await w.nsroute(args, { env: { NSROUTE_TRACE_LOAD: '1' } });
        const slow = await w.nsroute([...args, '--'], { env: { NSROUTE_TRACE_LOAD: '1' } });
        expect(sourcesOf(loadsOf(slow.stderr)).some((s) => /node_modules\/commander\//.test(s)), show(slow)).toBe(true);
        expect(withoutLoads(fast)).toEqual(withoutLoads(slow));
      }
      for (const bad of [['list', '--bogus'], ['list', 'extra']]) {
        const r2 = await w.nsroute(bad);
        expect(r2.exitCode, show(r2)).toBe(2);
        expect(r2.stderr, show(r2)).toMatch(/^nsroute: .*; see `nsroute --help`\n$/);
      }
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
  });
});

describe('a hot exec', () => {
  let w: World;
  useWorld((world) => (w = world));

  // NAME up (persistent), with the host watcher running: the execs in fn are hot. Down after.
  async function withHotName(n: string, up: string[], fn: () => Promise<void>): Promise<void> {
    expectOk(await w.nsroute(['up', n, ...up]));
    try {
      await waitFor(() => hostWatcherPid(w) !== undefined, 'the host watcher');
      await fn();
    } finally {
      expectOk(await w.nsroute(['down', n]));
    }
  }

  it('into a NAME whose profile names a subnet loads neither the planner nor ip-cidr', async () => {
    const n = w.name('ht');
    // The profile's subnet is checked without ip-cidr (net/addresses.ts checkCidr4).
    w.writeProfile(n, `via = "${SLOW_GW}"\nsubnet = "10.231.7.0/30"\n`);
    await withHotName(n, [], async () => {
      const r = await w.nsroute(['exec', n, '--', 'true'], { env: { NSROUTE_TRACE_LOAD: '1' } });
      expectOk(r);
      const all = sourcesOf(loadsOf(r.stderr));
      expect(ours(all), show(r)).toContain('src/commands/exec.ts');
      expect(all.filter((s) => /node_modules\/(ip-cidr|ip-address|jsbn)\//.test(s)), show(r)).toEqual([]);
      expect(ours(all).filter((s) => /^src\/plan\/plan\.ts$|^src\/net\/cidr\.ts$/.test(s)), show(r)).toEqual([]);
    });
  });

  // `exec NAME -- COMMAND` is answered without commander (src/fastpath.ts), saying what
  // commander's path says: an option (--as-root changes nothing for root's own run) sends the
  // same exec there.
  it('as exec NAME -- COMMAND loads neither commander nor cli.ts, and does what commander\'s path does', async () => {
    const n = w.name('fx');
    await withHotName(n, ['--via', SLOW_GW], async () => {
      const script = ['sh', '-c', 'echo "$NSROUTE_NAMESPACE $(id -u) $# $1"; echo to-stderr >&2; exit 3', 'sh', '--', '--help'];
      const cases: [string[], string[]][] = [
        [['exec', n, '--', ...script], ['exec', n, '--as-root', '--', ...script]], // hot, the command's status and output
        [['exec', 'bad/name', '--', 'true'], ['exec', 'bad/name', '--as-root', '--', 'true']], // refused: 125, one line
      ];
      for (const [fastArgs, slowArgs] of cases) {
        const fast = await w.nsroute(fastArgs, { env: { NSROUTE_TRACE_LOAD: '1' } });
        const slow = await w.nsroute(slowArgs, { env: { NSROUTE_TRACE_LOAD: '1' } });
        const fastSources = sourcesOf(loadsOf(fast.stderr));
        expect(fastSources.filter((s) => /node_modules\/commander\//.test(s) || s === 'src/cli.ts'), show(fast)).toEqual([]);
        expect(sourcesOf(loadsOf(slow.stderr)).some((s) => /node_modules\/commander\//.test(s)), show(slow)).toBe(true);
        expect(withoutLoads(fast)).toEqual(withoutLoads(slow));
      }
      const hot = await w.nsroute(cases[0]![0]);
      expect(hot.exitCode, show(hot)).toBe(3);
      expect(hot.stdout).toBe(`${n} 0 2 --\n`);
      const bad = await w.nsroute(cases[1]![0]);
      expect(bad.exitCode, show(bad)).toBe(125);
      expect(bad.stderr, show(bad)).toMatch(/^nsroute: [^\n]*bad\/name[^\n]*\n$/);
      // Not the fast path: no command after --, or an option before it.
      for (const other of [['exec', n, '--'], ['exec', '--', n, 'true']]) {
        const r = await w.nsroute(other, { env: { NSROUTE_TRACE_LOAD: '1' } });
        expect(sourcesOf(loadsOf(r.stderr)).some((s) => /node_modules\/commander\//.test(s)), show(r)).toBe(true);
      }
    });
  });
});

describe('the code cache', () => {
  // Made when the tests run, not when they are collected: a run that filters them all out
  // (vitest -t) collects this block but runs no afterAll, which left the directory behind.
  let tmp = '';
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'nsroute-cache-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const helpText = execFileSync(process.execPath, [join(DIST, 'nsroute.js'), '--help'], { encoding: 'utf8' });
  // The chunk of the command line (commander's definitions, the help text): --help loads it.
  const cliChunk = Object.entries(chunkInputs).find(([, inputs]) => inputs.includes('src/cli.ts'))![0];
  let n = 0;

  // A copy of dist with the main chunk's cache (or the chunk) changed by `spoil`; `nsroute
  // --help` from it must print the same help, exit 0, and report the cache as `expected`.
  function withSpoiled(spoil: (chunk: string, cache: string) => void, expected: string, nodeArgs: string[] = []) {
    const dist = join(tmp, `dist${n++}`);
    cpSync(DIST, dist, { recursive: true });
    const chunk = join(dist, 'chunks', cliChunk);
    spoil(chunk, `${chunk}.cache`);
    const r = traced(join(dist, 'nsroute.js'), ['--help'], nodeArgs);
    expect(r.status, r.stderr).toBe(0);
    expect(r.loads.find((l) => l.chunk === cliChunk)?.cache, r.stderr).toBe(expected);
    return r;
  }

  it('is used as built', () => {
    const r = withSpoiled(() => undefined, 'used');
    expect(r.stdout).toBe(helpText);
  });

  it('is ignored when another user owns it, others can write it, or it is a symlink or a FIFO', () => {
    expect(withSpoiled((_c, cache) => chownSync(cache, 1000, 1000), 'untrusted').stdout).toBe(helpText);
    expect(withSpoiled((_c, cache) => chmodSync(cache, 0o664), 'untrusted').stdout).toBe(helpText);
    expect(withSpoiled((_c, cache) => chmodSync(cache, 0o646), 'untrusted').stdout).toBe(helpText);
    expect(
      withSpoiled((_c, cache) => {
        renameSync(cache, `${cache}.real`);
        symlinkSync(`${cache}.real`, cache);
      }, 'untrusted').stdout,
    ).toBe(helpText);
    expect(
      withSpoiled((_c, cache) => {
        rmSync(cache);
        execFileSync('mkfifo', ['-m', '0644', cache]);
      }, 'untrusted').stdout,
    ).toBe(helpText);
  });

  it('is ignored when damaged or cut short', () => {
    const flip = (cache: string, at: (len: number) => number) => {
      const b = readFileSync(cache);
      const i = at(b.length);
      b[i] = b[i]! ^ 0xff;
      writeFileSync(cache, b);
    };
    expect(withSpoiled((_c, cache) => flip(cache, (len) => len - 100), 'stale').stdout).toBe(helpText);
    expect(withSpoiled((_c, cache) => flip(cache, () => 3), 'stale').stdout).toBe(helpText);
    expect(withSpoiled((_c, cache) => writeFileSync(cache, readFileSync(cache).subarray(0, 200)), 'stale').stdout).toBe(helpText);
    expect(withSpoiled((_c, cache) => writeFileSync(cache, ''), 'stale').stdout).toBe(helpText);
  });

  it('is ignored when made from another chunk of the same length: the chunk as it is now runs', () => {
    // V8 itself checks only the source's length: without nsroute's own check this would run
    // the cached code of the old text and print "Give a program".
    const r = withSpoiled((chunk) => {
      const text = readFileSync(chunk, 'utf8');
      expect(text).toContain('Give a program');
      writeFileSync(chunk, text.replace('Give a program', 'Give a PROGRAM'));
    }, 'stale');
    expect(r.stdout).toBe(helpText.replace('Give a program', 'Give a PROGRAM'));
  });

  it('is compiled without when V8 rejects it (another Node, other flags)', () => {
    expect(withSpoiled(() => undefined, 'rejected', ['--no-opt']).stdout).toBe(helpText);
  });

  // Node before 20.15 has no zlib crc32 (package.json allows any Node 20): simulated by a
  // preload that takes it away from node:zlib and from the binding the loader asks first.
  it('is neither read nor made on a Node without a CRC-32 (before 20.15): the chunks compile from source', () => {
    const preload = join(tmp, 'no-crc32.cjs');
    writeFileSync(
      preload,
      [
        "delete require('node:zlib').crc32;",
        'const binding = process.binding;',
        "process.binding = function (name) { const b = binding.call(process, name); return name === 'zlib' ? { ...b, crc32: undefined } : b; };",
        '',
      ].join('\n'),
    );
    const r = withSpoiled(() => undefined, 'uncheckable', ['--require', preload]);
    expect(r.stdout).toBe(helpText);
    expect(r.loads.every((l) => l.cache === 'uncheckable'), r.stderr).toBe(true);
    const dist = join(tmp, `dist${n++}`);
    cpSync(DIST, dist, { recursive: true });
    const made = spawnSync(process.execPath, ['--require', preload, '-e', `require(${JSON.stringify(join(dist, 'nsroute.js'))}).writeCodeCaches().then((w) => console.log(w.length))`], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    expect(made.stdout.trim()).toBe('0');
    expect(made.stderr).toContain('no code caches made');
  });

  it('is used again when written anew by writeCodeCaches, for the Node that runs', () => {
    const r = withSpoiled((chunk, cache) => {
      rmSync(cache);
      execFileSync(process.execPath, ['-e', `require(${JSON.stringify(join(chunk, '..', '..', 'nsroute.js'))}).writeCodeCaches()`]);
    }, 'used');
    expect(r.stdout).toBe(helpText);
  });
});
