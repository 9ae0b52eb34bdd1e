// The end-to-end suite (`npm run test:e2e`): a real browser against the real serve mode. Separate from the
// unit tests because it builds the app and takes minutes.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
