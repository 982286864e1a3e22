import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'agent/**/*.test.ts',
      'collectors/**/*.test.ts',
      'exporters/**/*.test.ts',
      'edge/**/*.test.ts',
      'test/**/*.test.ts',
      'deploy/**/*.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Concurrent e2e tests each start an agent and its simulated GPU tools; 2 cores take 3 at once.
    maxConcurrency: 3,
    coverage: {
      provider: 'v8',
      include: ['agent/**/*.ts', 'collectors/**/*.ts', 'exporters/**/*.ts', 'edge/**/*.ts'],
      exclude: ['**/*.test.ts', '**/fixtures/**'],
      reporter: ['text-summary', 'text'],
    },
  },
});
