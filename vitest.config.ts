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
      // Today's level (CI=true run of the whole suite on the 2-core VM, 7 Dec 2026: statements
      // 86.8 %, branches 76.2 %, functions 87.5 %, lines 88.9 %), less a little for run-to-run
      // noise: coverage may grow, not shrink. Raise these when it grows.
      thresholds: { statements: 86, branches: 75, functions: 86.5, lines: 88 },
    },
  },
});
