import { describe, expect, it } from 'vitest';
import { endpointsOf, recorder, testRequest, testService } from '../../test/support/layers.ts';
import { classify } from '../outcome.ts';
import { routingLayer } from '../routing/layer.ts';
import { chaosLayer } from './chaos-layer.ts';

function routed(chaos: Record<string, unknown>) {
  const svc = testService({ http: [{ chaos, route: [{ destination: {} }] }] });
  const req = testRequest(svc);
  // Routing puts the route's config on the request; chaos reads it from there.
  routingLayer(new Map([['svc', svc]]), () => 0.5)(() => {})(req, recorder());
  const [ep] = endpointsOf(svc);
  if (!ep) throw new Error('no endpoint');
  return { req, ep };
}

describe('chaos layer', () => {
  it('an injected reset fails the attempt as a reset, and nothing is sent', () => {
    const { req, ep } = routed({ reset: { percentage: { value: 100 } } });
    let sent = 0;
    const r = recorder();
    chaosLayer(() => 0)(() => {
      sent++;
    })(ep, req, r);
    expect(sent).toBe(0);
    expect(r.calls).toEqual(['start', 'error ECONNRESET']);
    expect(classify(r.errors[0])).toBe('reset');
  });

  it('an injected abort answers with its status', () => {
    const { req, ep } = routed({ abort: { httpStatus: 503, percentage: { value: 100 } } });
    const r = recorder();
    chaosLayer(() => 0)(() => {})(ep, req, r);
    expect(r.calls).toEqual(['start', 'headers 503', 'data', 'end']);
  });

  it('sends the attempt on when the draw misses', () => {
    const { req, ep } = routed({ reset: { percentage: { value: 10 } } });
    let sent = 0;
    chaosLayer(() => 0.99)(() => {
      sent++;
    })(ep, req, recorder());
    expect(sent).toBe(1);
  });
});
