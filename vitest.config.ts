import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A hang guard, not a speed limit: above the world's per-call limit (CALL_TIMEOUT_MS, 90 s,
    // test/world/world.ts) so that a hung call fails with its own output, and enough for a test
    // of a dozen calls on a machine 5-10x slower than a quiet one (CI shares machines). Loops
    // over many steps are one test per step, so no test needs much more than that.
    testTimeout: 300_000,
    // Building and destroying a world (namespaces, servers) on such a machine.
    hookTimeout: 300_000,
    // Integration files each build their own world; two cores, so run two files at a time.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
