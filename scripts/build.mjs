// Builds dist/ with esbuild (issue 11: start-up is most of what a short command costs):
//  - dist/chunks/: the CLI (src/main.ts) split into chunks, one per verb (cli.ts imports each
//    verb's module when that verb runs), one per shared part (commander, execa, ...), so a
//    command compiles and evaluates only what it uses. esbuild splits only ESM; each chunk is
//    then turned into CommonJS, which the loader compiles with V8's code cache (Node 20 has
//    no code cache for ES modules).
//  - dist/chunks/*.js.cache: V8 code caches for the chunks, made here (and by the Debian
//    package's postinst for the Node it runs on); see src/loader.ts for when one is used.
//  - dist/nsroute.js: the loader (src/loader.ts), CommonJS (dist/package.json says so; the
//    package installs it where no package.json applies, which means CommonJS too).
// Bundled rather than hundreds of module files: `node -e 0` alone costs 60-100 ms here
// (PLATFORM.md), resolving files on top of it is not free. esbuild directly rather than
// tsup: tsup pulls in rollup, whose per-platform optional packages the registry our CI uses
// does not serve, which breaks `npm ci`.
import { build, transform } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { basename, join } from 'node:path';

const { version } = JSON.parse(readFileSync('package.json', 'utf8'));
rmSync('dist', { recursive: true, force: true });
mkdirSync('dist/chunks', { recursive: true });

const split = await build({
  entryPoints: { main: 'src/main.ts' },
  outdir: 'dist/chunks',
  bundle: true,
  splitting: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  metafile: true,
  write: false,
  logLevel: 'warning',
});

const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
let mainChunk;
for (const out of split.outputFiles) {
  const name = basename(out.path);
  if (split.metafile.outputs[`dist/chunks/${name}`]?.entryPoint === 'src/main.ts') mainChunk = name;
  // import and export become require and exports; import() becomes a require() in a
  // promise, which the loader answers with its own chunk loader.
  const { code } = await transform(out.text, { format: 'cjs', platform: 'node', target: 'node20', supported: { 'dynamic-import': false }, logLevel: 'warning' });
  for (const [, id] of code.matchAll(/\brequire\("([^"]*)"\)/g)) {
    if (!builtins.has(id) && !/^\.\/[A-Za-z0-9_-]+\.js$/.test(id)) throw new Error(`build: ${name} requires ${id}, which the loader cannot provide`);
  }
  if (/\bimport\(|import\.meta/.test(code)) throw new Error(`build: ${name} still has import() or import.meta`);
  // esbuild escapes non-ASCII characters (charset ascii, its default): the loader reads the
  // chunks as latin1, the cheapest decoding, which is right only for ASCII.
  if (/[^\x00-\x7f]/.test(code)) throw new Error(`build: ${name} is not ASCII`);
  // Wrapped here as Node wraps a CommonJS module, so that the loader compiles the file's text
  // as it is (a function of exports, require, module, __filename, __dirname).
  writeFileSync(join('dist/chunks', name), `(function (exports, require, module, __filename, __dirname) { ${code}\n})`);
}
if (!mainChunk) throw new Error('build: no chunk for src/main.ts');
// Which sources went into which chunk: for the tests that check what a verb loads (not
// installed by the package).
const inputs = Object.fromEntries(Object.entries(split.metafile.outputs).map(([out, o]) => [basename(out), Object.keys(o.inputs).sort()]));
writeFileSync('dist/chunks.json', JSON.stringify(inputs, null, 1) + '\n');

await build({
  entryPoints: ['src/loader.ts'],
  outfile: 'dist/nsroute.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
  define: { NSROUTE_VERSION: JSON.stringify(version), NSROUTE_MAIN_CHUNK: JSON.stringify(mainChunk) },
  banner: { js: '#!/usr/bin/env node' },
});
chmodSync('dist/nsroute.js', 0o755);
// package.json above says "module"; the loader is CommonJS.
writeFileSync('dist/package.json', '{ "type": "commonjs" }\n');

// The code caches, for the Node that builds (the package's postinst makes them again for
// the Node it installs on).
await createRequire(import.meta.url)('../dist/nsroute.js').writeCodeCaches();

// The man page and the shell completions, generated from the built CLI's own command
// definitions (scripts/man.mjs; `nsroute completion SHELL`), so they cannot drift from --help.
execFileSync(process.execPath, ['scripts/man.mjs', 'dist/nsroute.js', 'dist/man/nsroute.1'], { stdio: 'inherit' });
mkdirSync('dist/completion', { recursive: true });
for (const [shell, file] of [['bash', 'nsroute'], ['zsh', '_nsroute'], ['fish', 'nsroute.fish']]) {
  writeFileSync(`dist/completion/${file}`, execFileSync(process.execPath, ['dist/nsroute.js', 'completion', shell]));
}
