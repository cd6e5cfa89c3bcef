import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // ORT already uses every core inside one test; more workers only contend.
    pool: 'forks',
    maxWorkers: 2,
  },
});
