import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The engine is CPU-bound and the machines have 2 cores: more workers only thrash.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // One BLAS thread per worker: two forks on two cores, never oversubscribed.
    env: { OPENBLAS_NUM_THREADS: '1' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
