import { afterEach, describe, expect, it, vi } from 'vitest';
import { endpointsOf, recorder, testRequest, testService } from '../../test/support/layers.ts';
import { classify } from '../outcome.ts';
import { routingLayer } from '../routing/layer.ts';
import { ChaosResetError, chaosLayer } from './chaos-layer.ts';

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

describe('chaos layer: latency, and the answers as callers see them', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a request whose route has no chaos goes straight on', () => {
    const svc = testService();
    const [ep] = endpointsOf(svc);
    let sent = 0;
    chaosLayer(() => 0)(() => {
      sent++;
    })(ep as never, testRequest(svc), recorder());
    expect(sent).toBe(1);
  });

  it('injected latency holds the attempt for its fixed delay, then sends it', () => {
    vi.useFakeTimers();
    const { req, ep } = routed({ latency: { fixedDelay: '200ms', percentage: { value: 100 } } });
    let sent = 0;
    chaosLayer(() => 0)(() => {
      sent++;
    })(ep, req, recorder());
    vi.advanceTimersByTime(199);
    expect(sent).toBe(0);
    vi.advanceTimersByTime(1);
    expect(sent).toBe(1);
  });

  it('latency then a reset: the reset comes after the delay', () => {
    vi.useFakeTimers();
    const { req, ep } = routed({
      latency: { fixedDelay: '50ms', percentage: { value: 100 } },
      reset: { percentage: { value: 100 } },
    });
    const r = recorder();
    chaosLayer(() => 0)(() => {})(ep, req, r);
    expect(r.calls).toEqual([]);
    vi.advanceTimersByTime(50);
    expect(r.calls).toEqual(['start', 'error ECONNRESET']);
  });

  it('a zero delay sends at once', () => {
    const { req, ep } = routed({ latency: { fixedDelay: '0s', percentage: { value: 100 } } });
    let sent = 0;
    chaosLayer(() => 0)(() => {
      sent++;
    })(ep, req, recorder());
    expect(sent).toBe(1);
  });

  it('the injected reset names itself; the abort is marked and says what it is', () => {
    const err = new ChaosResetError();
    expect(err.name).toBe('ChaosResetError');
    expect(err.message).toBe('meshwork chaos: injected connection reset');
    expect(err.code).toBe('ECONNRESET');

    const { req, ep } = routed({ abort: { httpStatus: 502, percentage: { value: 100 } } });
    const got: { headers?: Record<string, unknown>; body: string } = { body: '' };
    const r = recorder();
    let sent = 0;
    chaosLayer(() => 0)(() => {
      sent++;
    })(ep, req, {
      ...r,
      onResponseStart: (_c, status, headers) => {
        got.headers = headers as Record<string, unknown>;
        r.status = status;
      },
      onResponseData: (_c, chunk) => {
        got.body += chunk.toString();
      },
    });
    expect(sent).toBe(0);
    expect(r.status).toBe(502);
    expect(got.headers?.['x-meshwork-chaos']).toBe('abort');
    expect(got.body).toBe('meshwork chaos abort');
  });
});
