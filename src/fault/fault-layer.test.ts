import { describe, expect, it } from 'vitest';
import { recorder, testRequest, testService } from '../../test/support/layers.ts';
import { routingLayer } from '../routing/layer.ts';
import { faultLayer } from './fault-layer.ts';

function routed(fault: Record<string, unknown>) {
  const svc = testService({ http: [{ fault, route: [{ destination: {} }] }] });
  const req = testRequest(svc);
  routingLayer(new Map([['svc', svc]]), () => 0.5)(() => {})(req, recorder());
  return req;
}

describe('fault layer', () => {
  it('an injected abort answers locally with its status and a marker header; nothing goes on', () => {
    const req = routed({ abort: { httpStatus: 418, percentage: { value: 100 } } });
    let next = 0;
    const r = recorder();
    faultLayer(() => 0)(() => {
      next++;
    })(req, r);
    expect(next).toBe(0);
    expect(r.calls).toEqual(['start', 'headers 418', 'data', 'end']);
  });

  it('an injected delay holds the request before it goes on', async () => {
    const req = routed({ delay: { fixedDelay: '30ms', percentage: { value: 100 } } });
    const t0 = performance.now();
    await new Promise<void>((resolve) => faultLayer(() => 0)(() => resolve())(req, recorder()));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
  });

  it('a request on a route without a fault goes straight on', () => {
    const svc = testService();
    let next = 0;
    faultLayer(() => 0)(() => {
      next++;
    })(testRequest(svc), recorder());
    expect(next).toBe(1);
  });
});
