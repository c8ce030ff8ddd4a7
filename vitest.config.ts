import { defineConfig } from 'vitest/config';

const json = process.env.MESHWORK_VITEST_JSON;

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    // Installs (apt, as root) and starts dnsmasq, etcd and redis-server; ensures haproxy and chromium.
    globalSetup: ['test/setup/services.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    reporters: json ? ['default', 'json'] : ['default'],
    ...(json ? { outputFile: { json } } : {}),
  },
});
