import { defineConfig } from 'vitest/config';

// The unit tests of the layers and policies, for mutation testing (stryker.config.mjs): fast,
// no network services needed.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/counters.test.ts', 'test/outcomes.test.ts'],
    testTimeout: 20_000,
    pool: 'forks',
  },
});
