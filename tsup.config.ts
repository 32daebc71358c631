import { defineConfig } from 'tsup';

// One bundled file: `node -e 0` alone costs 60-80 ms here (PLATFORM.md), so the CLI's
// start-up must not also resolve hundreds of module files.
export default defineConfig({
  entry: { nsroute: 'src/main.ts' },
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  outDir: 'dist',
  bundle: true,
  noExternal: [/.*/],
  clean: true,
  sourcemap: false,
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __nsrCreateRequire } from 'node:module';\nconst require = __nsrCreateRequire(import.meta.url);",
  },
});
