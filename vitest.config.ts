import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    projects: [
      {
        extends: true,
        test: { name: 'memory', include: ['test/**/*.test.ts'], exclude: ['test/replicas/**'] },
      },
      {
        // The webhook and Control API suites again, on the Redis store (docs/replicas.md).
        extends: true,
        test: {
          name: 'redis',
          include: ['test/http/**/*.test.ts', 'test/replicas/**/*.test.ts'],
          env: { CP_TEST_STORE: 'redis' },
          globalSetup: ['test/support/redis-global-setup.ts'],
        },
      },
    ],
  },
});
