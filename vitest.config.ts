import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration files each build their own world; two cores, so run two files at a time.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
