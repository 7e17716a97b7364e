import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    projects: [
      {
        extends: true,
        test: { name: 'memory', include: ['test/**/*.test.ts'], exclude: ['test/replicas/**', 'test/main.test.ts'] },
      },
      {
        // The compiled service as `npm start` runs it: built once before the test (only when
        // this project has a test to run).
        extends: true,
        test: { name: 'dist', include: ['test/main.test.ts'], globalSetup: ['test/support/build-global-setup.ts'] },
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
