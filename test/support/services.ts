/**
 * Where the real services are: MESHWORK_TEST_* env vars (set by the vitest global setup,
 * test/setup/services.ts, which starts them), else the env file that .ci/services.sh writes
 * (MESHWORK_SERVICES_ENV, default /tmp/meshwork-services.env; the benches use it outside vitest).
 */
import { existsSync, readFileSync } from 'node:fs';

export interface TestServices {
  dns?: string | undefined;
  dnsHostsDir?: string | undefined;
  etcd?: string | undefined;
  redis?: string | undefined;
  /** The prometheus binary (tests start their own, on a random port). */
  prometheus?: string | undefined;
}

export function testServices(): TestServices {
  const env: Record<string, string | undefined> = { ...process.env };
  const file = process.env.MESHWORK_SERVICES_ENV ?? '/tmp/meshwork-services.env';
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^(?:export\s+)?(MESHWORK_TEST_[A-Z_]+)=(.*)$/.exec(line.trim());
      if (m && env[m[1] as string] === undefined)
        env[m[1] as string] = (m[2] as string).replace(/^["']|["']$/g, '');
    }
  }
  return {
    dns: env.MESHWORK_TEST_DNS,
    dnsHostsDir: env.MESHWORK_TEST_DNS_HOSTSDIR,
    etcd: env.MESHWORK_TEST_ETCD,
    redis: env.MESHWORK_TEST_REDIS,
    prometheus: env.MESHWORK_TEST_PROMETHEUS,
  };
}

/**
 * True when the tests needing `what` can run. The global setup starts every service, so a
 * missing one means it was bypassed: in CI that is a failure; elsewhere the tests are skipped
 * and the reason printed (and put in the suite's name by `suiteName`).
 */
export function requireService(what: string, present: boolean): boolean {
  if (present) return true;
  const reason = `${what} is not set: the vitest global setup (test/setup/services.ts) did not run`;
  if (process.env.CI) throw new Error(`${reason} (CI)`);
  console.warn(`[skip] ${reason}; these tests are SKIPPED`);
  return false;
}

/** The suite's name, with the skip reason when it does not run. */
export function suiteName(name: string, run: boolean, what: string): string {
  return run ? name : `${name} (SKIPPED: ${what} unset)`;
}

/** The SRV fixtures that the test setup (and .ci/services.sh) put in dnsmasq. */
export const SRV_FIXTURES = {
  api: {
    name: '_http._tcp.api.meshwork.test',
    records: [
      { target: 'api-1.meshwork.test', ip: '127.0.0.11', port: 18081, priority: 10, weight: 60 },
      { target: 'api-2.meshwork.test', ip: '127.0.0.12', port: 18082, priority: 10, weight: 20 },
      { target: 'api-3.meshwork.test', ip: '127.0.0.13', port: 18083, priority: 20, weight: 100 },
    ],
  },
  bench: {
    name: '_http._tcp.bench.meshwork.test',
    target: 'bench-1.meshwork.test',
    ip: '127.0.0.21',
    port: 18091,
    priority: 10,
    weight: 10,
  },
} as const;
