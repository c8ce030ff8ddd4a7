// Mutation testing of the layers and policies (`npm run mutation`). Not part of `npm test`: it
// takes long (see docs/architecture.md for the last score and time). The vitest runner runs, for
// each mutant, only the tests that cover it.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  coverageAnalysis: 'perTest',
  mutate: [
    'src/outcome.ts',
    'src/endpoint/*-layer.ts',
    'src/endpoint/outlier.ts',
    'src/retry/retry-layer.ts',
    'src/retry/retry-on.ts',
    'src/retry/budget.ts',
    'src/retry/backoff.ts',
    'src/retry/deadline.ts',
    'src/retry/policy.ts',
    'src/breaker/breaker-layer.ts',
    'src/balancer/balance-layer.ts',
    'src/fault/*-layer.ts',
    'src/fault/decide.ts',
    'src/http/body-layer.ts',
    'src/telemetry/attempt-layer.ts',
  ],
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: '.stryker-tmp/mutation.json' },
  concurrency: 2,
  timeoutMS: 10_000,
  thresholds: { high: 90, low: 80, break: null },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
