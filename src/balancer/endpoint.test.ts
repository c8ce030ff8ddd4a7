import { describe, expect, it } from 'vitest';
import { startServer } from '../../test/support/servers.ts';
import { silentLogger } from '../telemetry/logger.ts';
import { EndpointSet } from './endpoint-set.ts';
import { createBalancer } from './index.ts';

function set(idlePoolSweepMs = 60_000) {
  return new EndpointSet({
    service: 'svc',
    provider: 'static',
    balancer: createBalancer(undefined),
    clock: () => performance.now(),
    logger: silentLogger,
    drainTimeoutMs: 1_000,
    idlePoolSweepMs,
  });
}

const spec = (address: string) => {
  const [host, port] = address.split(':') as [string, string];
  return { address, host, port: Number(port), labels: {}, weight: 1, zone: undefined };
};

function get(ep: { dispatch: (o: never, h: never) => boolean }): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    ep.dispatch(
      { origin: 'http://svc', path: '/', method: 'GET', headers: { host: 'svc' } } as never,
      {
        onRequestStart() {},
        onResponseStart: (_c: unknown, s: number) => {
          status = s;
        },
        onResponseData() {},
        onResponseEnd: () => resolve(status),
        onResponseError: (_c: unknown, err: Error) => reject(err),
      } as never,
    );
  });
}

describe('endpoint pools', () => {
  it('an endpoint makes its pool on its first request, not before', async () => {
    const s = await startServer();
    const eps = set();
    eps.apply([
      { type: 'insert', endpoint: spec(s.address) },
      { type: 'insert', endpoint: spec('10.9.9.9:80') },
    ]);
    const [a, b] = [...eps.endpoints()];
    expect(a?.hasPool).toBe(false);
    expect(await get(a as never)).toBe(200);
    expect(a?.hasPool).toBe(true);
    expect(b?.hasPool).toBe(false);
    await eps.close(1_000);
    await s.close();
  });

  it('an idle endpoint lets its pool go after a whole sweep period without requests, and makes a new one when needed', async () => {
    const s = await startServer();
    const eps = set();
    eps.apply([{ type: 'insert', endpoint: spec(s.address) }]);
    const [ep] = [...eps.endpoints()];
    if (!ep) throw new Error('no endpoint');
    expect(await get(ep as never)).toBe(200);
    ep.attempts++; // the load layer counts attempts
    expect(eps.releaseIdlePools()).toBe(0); // a request since the last sweep
    expect(eps.releaseIdlePools()).toBe(1); // none since
    expect(ep.hasPool).toBe(false);
    expect(await get(ep as never)).toBe(200);
    expect(ep.hasPool).toBe(true);
    await eps.close(1_000);
    await s.close();
  });

  it('never lets go of a pool with a request in flight', () => {
    const eps = set();
    eps.apply([{ type: 'insert', endpoint: spec('10.9.9.9:80') }]);
    const [ep] = [...eps.endpoints()];
    if (!ep) throw new Error('no endpoint');
    void ep.pool;
    ep.inflight = 1;
    eps.releaseIdlePools();
    expect(eps.releaseIdlePools()).toBe(0);
    expect(ep.hasPool).toBe(true);
    ep.inflight = 0;
    return eps.close(100);
  });
});
