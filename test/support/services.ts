/**
 * Where the real registries started by .ci/services.sh are: MESHWORK_TEST_* env vars, else the
 * env file it writes (MESHWORK_SERVICES_ENV, default /tmp/meshwork-services.env).
 * In CI (CI set) a missing service is a failure, locally the tests skip.
 */
import { existsSync, readFileSync } from 'node:fs';

export interface TestServices {
  dns?: string | undefined;
  dnsHostsDir?: string | undefined;
  etcd?: string | undefined;
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
  };
}

/** True when the tests needing `what` must run; throws in CI when the service is missing. */
export function requireService(what: string, present: boolean): boolean {
  if (present) return true;
  if (process.env.CI)
    throw new Error(`${what} is not available in CI: run .ci/services.sh first (MESHWORK_TEST_* unset)`);
  return false;
}

/** The SRV fixtures that .ci/services.sh puts in dnsmasq (name -> target, port, priority, weight). */
export const SRV_FIXTURES = {
  api: {
    name: '_http._tcp.api.meshwork.test',
    records: [
      { target: 'api-1.meshwork.test', ip: '127.0.0.11', port: 18081, priority: 10, weight: 60 },
      { target: 'api-2.meshwork.test', ip: '127.0.0.12', port: 18082, priority: 10, weight: 20 },
      { target: 'api-3.meshwork.test', ip: '127.0.0.13', port: 18083, priority: 20, weight: 100 },
    ],
  },
  bench: { name: '_http._tcp.bench.meshwork.test', target: 'bench-1.meshwork.test' },
} as const;
