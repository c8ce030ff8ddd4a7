import { describe, expect, it } from 'vitest';
import { fakeClock, recorder, testRequest, testService } from '../../test/support/layers.ts';
import { balance } from './balance-layer.ts';
import type { Endpoint } from './endpoint.ts';

function picks(_svc: ReturnType<typeof testService>, clock: ReturnType<typeof fakeClock>) {
  const seen: Endpoint[] = [];
  const dispatch = balance((ep) => {
    seen.push(ep);
  }, clock);
  return { seen, dispatch };
}

describe('balance layer', () => {
  it('hands each request to one endpoint of its subset', () => {
    const clock = fakeClock();
    const svc = testService({ subsets: [{ name: 'v2', labels: { version: 'v2' } }] }, [], clock);
    svc.endpoints.apply([
      {
        type: 'insert',
        endpoint: {
          address: '10.0.0.1:80',
          host: '10.0.0.1',
          port: 80,
          labels: { version: 'v1' },
          weight: 1,
          zone: undefined,
        },
      },
      {
        type: 'insert',
        endpoint: {
          address: '10.0.0.2:80',
          host: '10.0.0.2',
          port: 80,
          labels: { version: 'v2' },
          weight: 1,
          zone: undefined,
        },
      },
    ]);
    const { seen, dispatch } = picks(svc, clock);
    for (let i = 0; i < 10; i++) {
      const req = testRequest(svc);
      req.subset = 'v2';
      dispatch(req, recorder());
    }
    expect(new Set(seen.map((e) => e.address))).toEqual(new Set(['10.0.0.2:80']));
  });

  it('avoids endpoints the request already tried, and reuses one rather than fail when none is left', () => {
    const clock = fakeClock();
    const svc = testService({}, ['10.0.0.1:80', '10.0.0.2:80'], clock);
    const [a, b] = [...svc.endpoints.endpoints()];
    const { seen, dispatch } = picks(svc, clock);
    const req = testRequest(svc);
    req.tried = new Set([a as Endpoint]);
    for (let i = 0; i < 5; i++) dispatch(req, recorder());
    expect(seen.every((e) => e === b)).toBe(true);
    req.tried = new Set([a as Endpoint, b as Endpoint]);
    dispatch(req, recorder());
    expect(seen).toHaveLength(6);
  });

  it('with nothing available fails fast with MESHWORK_ERR_NO_ENDPOINTS, naming why', () => {
    const clock = fakeClock();
    const svc = testService({}, ['10.0.0.1:80'], clock);
    for (const ep of svc.endpoints.endpoints()) ep.healthy = false;
    const { seen, dispatch } = picks(svc, clock);
    const r = recorder();
    dispatch(testRequest(svc), r);
    expect(seen).toHaveLength(0);
    expect(r.calls).toEqual(['start', 'error MESHWORK_ERR_NO_ENDPOINTS']);
    expect(r.errors[0]?.message).toMatch(/none of 1 endpoints is available/);
  });

  it('before discovery is ready, waits (bounded) and sends once endpoints arrive', async () => {
    const clock = fakeClock();
    const svc = testService({ discovery: { static: ['10.0.0.1:80'], initialTimeout: '1s' } }, [], clock, {
      start: false,
    });
    const { seen, dispatch } = picks(svc, clock);
    const r = recorder();
    dispatch(testRequest(svc), r);
    expect(seen).toHaveLength(0);
    expect(r.calls).toEqual([]);
    svc.start();
    await new Promise((res) => setTimeout(res, 10));
    expect(seen.map((e) => e.address)).toEqual(['10.0.0.1:80']);
  });

  it('when discovery gives nothing within initialTimeout, fails naming the provider and the bound', async () => {
    const clock = fakeClock();
    const svc = testService({ discovery: { static: [], initialTimeout: '20ms' } }, [], clock, {
      start: false,
    });
    const { seen, dispatch } = picks(svc, clock);
    const r = recorder();
    dispatch(testRequest(svc), r);
    await new Promise((res) => setTimeout(res, 60));
    expect(seen).toHaveLength(0);
    expect(r.calls).toEqual(['start', 'error MESHWORK_ERR_NO_ENDPOINTS']);
    expect(r.errors[0]?.message).toMatch(/discovery \(static\) gave no endpoints within 20 ms/);
  });

  it('names an unknown subset, and a subset with no endpoint', () => {
    const clock = fakeClock();
    const svc = testService({ subsets: [{ name: 'v9', labels: { version: 'v9' } }] }, ['10.0.0.1:80'], clock);
    const { dispatch } = picks(svc, clock);
    const unknown = recorder();
    const a = testRequest(svc);
    a.subset = 'nope';
    dispatch(a, unknown);
    expect(unknown.errors[0]?.message).toMatch(/unknown subset "nope"/);
    const empty = recorder();
    const b = testRequest(svc);
    b.subset = 'v9';
    dispatch(b, empty);
    expect(empty.errors[0]?.message).toMatch(/subset "v9": discovery returned 0 endpoints/);
  });

  it('with a hash policy, derives the key once per request and sets the generated cookie on the answer', () => {
    const clock = fakeClock();
    const svc = testService(
      { trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'sticky', ttl: '60s' } } } } },
      ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'],
      clock,
    );
    const seen: Endpoint[] = [];
    const dispatch = balance((ep, _req, h) => {
      seen.push(ep);
      h.onRequestStart?.(undefined as never, {});
      const headers: Record<string, string | string[]> = { 'set-cookie': 'other=1' };
      h.onResponseStart?.(undefined as never, 200, headers, '');
    }, clock);
    const req = testRequest(svc);
    dispatch(req, recorder());
    expect(typeof req.hashKey).toBe('string');
    expect(req.hashCookie).toMatch(/^sticky=/);
    const key = req.hashKey;
    dispatch(req, recorder());
    expect(req.hashKey).toBe(key);
    expect(seen[0]).toBe(seen[1]);
  });
});
