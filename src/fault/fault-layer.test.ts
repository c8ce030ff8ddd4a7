import { afterEach, describe, expect, it, vi } from 'vitest';
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

describe('fault layer: what the caller sees', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function capture() {
    const r = recorder();
    const got: { headers: Record<string, unknown>; body: string } = { headers: {}, body: '' };
    return {
      r,
      got,
      handler: {
        ...r,
        onResponseStart: (_c: unknown, status: number, headers: Record<string, unknown>) => {
          r.status = status;
          got.headers = headers;
          r.calls.push(`headers ${status}`);
        },
        onResponseData: (_c: unknown, chunk: Buffer) => {
          got.body += chunk.toString();
        },
      },
    };
  }

  it('an HTTP abort carries x-meshwork-fault: abort and says it is the fault filter’s', () => {
    const req = routed({ abort: { httpStatus: 503, percentage: { value: 100 } } });
    const { r, got, handler } = capture();
    faultLayer(() => 0)(() => {})(req, handler as never);
    expect(r.status).toBe(503);
    expect(got.headers['x-meshwork-fault']).toBe('abort');
    expect(got.body).toBe('fault filter abort');
  });

  it('a gRPC abort is a trailers-only gRPC answer: HTTP 200 with grpc-status in the headers', () => {
    const req = routed({ abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } });
    const { r, got, handler } = capture();
    let next = 0;
    faultLayer(() => 0)(() => {
      next++;
    })(req, handler as never);
    expect(next).toBe(0);
    expect(r.status).toBe(200);
    expect(got.headers).toMatchObject({
      'content-type': 'application/grpc',
      'grpc-status': '14',
      'grpc-message': 'fault filter abort',
      'x-meshwork-fault': 'abort',
    });
    expect(got.body).toBe('');
  });

  it('the delay is exactly fixedDelay; delay and abort together: the abort answers after the delay', () => {
    vi.useFakeTimers();
    const req = routed({
      delay: { fixedDelay: '100ms', percentage: { value: 100 } },
      abort: { httpStatus: 500, percentage: { value: 100 } },
    });
    const { r, handler } = capture();
    faultLayer(() => 0)(() => {})(req, handler as never);
    vi.advanceTimersByTime(99);
    expect(r.calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(r.status).toBe(500);
  });

  it('a zero delay goes on at once', () => {
    const req = routed({ delay: { fixedDelay: '0s', percentage: { value: 100 } } });
    let next = 0;
    faultLayer(() => 0)(() => {
      next++;
    })(req, recorder());
    expect(next).toBe(1);
  });

  it('a draw that misses goes on', () => {
    const req = routed({ abort: { httpStatus: 500, percentage: { value: 50 } } });
    let next = 0;
    faultLayer(() => 0.6)(() => {
      next++;
    })(req, recorder());
    expect(next).toBe(1);
  });
});
