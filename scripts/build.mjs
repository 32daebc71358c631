// Bundles the CLI into one file with esbuild: `node -e 0` alone costs 60-80 ms on our
// machines (PLATFORM.md), so start-up must not also resolve hundreds of module files.
// esbuild directly rather than tsup: tsup pulls in rollup, whose per-platform optional
// packages the registry our CI uses does not serve, which breaks `npm ci`.
import { build } from 'esbuild';
import { chmodSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/nsroute.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
  banner: {
    // Bundled CommonJS dependencies call require().
    js: "#!/usr/bin/env node\nimport { createRequire as __nsrCreateRequire } from 'node:module';\nconst require = __nsrCreateRequire(import.meta.url);",
  },
});
chmodSync('dist/nsroute.js', 0o755);

// The man page and the shell completions, generated from the built CLI's own command
// definitions (scripts/man.mjs; `nsroute completion SHELL`), so they cannot drift from --help.
const { execFileSync } = await import('node:child_process');
const { mkdirSync, writeFileSync } = await import('node:fs');
execFileSync(process.execPath, ['scripts/man.mjs', 'dist/nsroute.js', 'dist/man/nsroute.1'], { stdio: 'inherit' });
mkdirSync('dist/completion', { recursive: true });
for (const [shell, file] of [['bash', 'nsroute'], ['zsh', '_nsroute'], ['fish', 'nsroute.fish']]) {
  writeFileSync(`dist/completion/${file}`, execFileSync(process.execPath, ['dist/nsroute.js', 'completion', shell]));
}
