import { afterEach, describe, expect, it } from 'vitest';
import { EndpointSet } from '../balancer/endpoint-set.ts';
import { createBalancer } from '../balancer/index.ts';
import type { EndpointSpec } from '../discovery/types.ts';
import { silentLogger } from './logger.ts';
import { ServiceTelemetry } from './service-telemetry.ts';

const open: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

function spec(i: number): EndpointSpec {
  const host = `10.0.${(i >> 8) & 255}.${i & 255}`;
  return { address: `${host}:8080`, host, port: 8080, labels: {}, weight: 1, zone: undefined };
}

describe('ServiceTelemetry under endpoint churn', () => {
  it('keeps ejection records only for endpoints the service still has', async () => {
    let now = 0;
    const set = new EndpointSet({
      service: 'svc',
      provider: 'test',
      balancer: createBalancer(undefined, { zone: undefined }),
      clock: () => now,
      logger: silentLogger,
      drainTimeoutMs: 0,
    });
    const tel = new ServiceTelemetry('svc', set, silentLogger, () => now);
    open.push(async () => {
      tel.close();
      await set.close(0);
    });
    const sink = tel.discoverySink(set);
    const LIVE = 10;
    for (let i = 0; i < LIVE; i++) sink.apply([{ type: 'insert', endpoint: spec(i) }]);
    sink.ready();
    // 500 replacements, each new address ejected once before it goes (a churning fleet with a
    // flaky release): the records must follow the endpoints out.
    for (let i = LIVE; i < LIVE + 500; i++) {
      now += 1000;
      const gone = spec(i - LIVE).address;
      tel.ejection({ endpoint: gone, reason: 'consecutive_5xx', durationMs: 30_000 });
      sink.apply([
        { type: 'remove', address: gone },
        { type: 'insert', endpoint: spec(i) },
      ]);
      expect(tel.ejections.size).toBeLessThanOrEqual(set.size + [...set.endpoints()].length);
    }
    // Drained (drain timeout 0): nothing left of the 500 removed endpoints once the next update lands.
    await new Promise((r) => setTimeout(r, 20));
    tel.ejection({ endpoint: spec(LIVE + 499).address, reason: 'consecutive_5xx', durationMs: 30_000 });
    sink.apply([{ type: 'health', address: spec(LIVE + 499).address, healthy: true }]);
    expect([...tel.ejections.keys()]).toEqual([spec(LIVE + 499).address]);
  });
});
