import { describe, expect, it } from 'vitest';
import { endpointsOf, recorder, testRequest, testService } from '../../test/support/layers.ts';
import { limitsLayer } from './limits-layer.ts';

describe('limits layer', () => {
  it('fails fast with MESHWORK_ERR_OVERFLOW at http2MaxRequests in flight to the service, counting overflows', () => {
    const svc = testService({ trafficPolicy: { connectionPool: { http: { http2MaxRequests: 2 } } } });
    const [ep] = endpointsOf(svc);
    if (!ep) throw new Error('no endpoint');
    let passed = 0;
    const dispatch = limitsLayer()(() => {
      passed++;
    });
    dispatch(ep, testRequest(svc), recorder());
    svc.limits.active = 2; // the load layer's count
    const r = recorder();
    dispatch(ep, testRequest(svc), r);
    expect(passed).toBe(1);
    expect(r.calls).toEqual(['start', 'error MESHWORK_ERR_OVERFLOW']);
    expect(svc.limits.overflows).toBe(1);
  });

  it('fails fast at http1MaxPendingRequests queued at one endpoint beyond maxConnections', () => {
    const svc = testService({
      trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } },
    });
    const [ep, other] = endpointsOf(svc);
    if (!ep || !other) throw new Error('no endpoint');
    let passed = 0;
    const dispatch = limitsLayer()(() => {
      passed++;
    });
    ep.inflight = 2; // one on the connection, one pending
    const r = recorder();
    dispatch(ep, testRequest(svc), r);
    expect(r.errors[0]?.message).toMatch(/http1MaxPendingRequests/);
    dispatch(other, testRequest(svc), recorder());
    expect(passed).toBe(1);
  });
});
