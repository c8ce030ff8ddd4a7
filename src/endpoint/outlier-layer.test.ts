import { describe, expect, it, vi } from 'vitest';
import {
  answer,
  breakBody,
  endpointsOf,
  fail,
  fakeClock,
  recorder,
  refusedError,
  resetError,
  testRequest,
  testService,
} from '../../test/support/layers.ts';
import { MeshAbortedError, MeshTimeoutError } from '../errors.ts';
import { DISCARDED } from '../outcome.ts';
import type { DispatchHandler } from '../pipeline.ts';
import { outlierLayer, outlierResult } from './outlier-layer.ts';

function setup() {
  const clock = fakeClock();
  const svc = testService(
    { trafficPolicy: { outlierDetection: { consecutive5xxErrors: 3, maxEjectionPercent: 100 } } },
    ['10.0.0.1:80', '10.0.0.2:80'],
    clock,
  );
  const [ep] = endpointsOf(svc);
  if (!ep) throw new Error('no endpoint');
  let below: DispatchHandler | undefined;
  const dispatch = outlierLayer(clock)((_ep, _req, h) => {
    below = h;
  });
  const send = () => {
    dispatch(ep, testRequest(svc), recorder());
    return below as DispatchHandler;
  };
  return { clock, ep, send };
}

describe('outlier layer', () => {
  it('ejects after consecutive 5xx answers', () => {
    const { clock, ep, send } = setup();
    for (let i = 0; i < 3; i++) answer(send(), 503);
    expect(ep.isEjected(clock())).toBe(true);
  });

  it('counts resets, per-try timeouts and bodies that break as failures', () => {
    const { clock, ep, send } = setup();
    fail(send(), resetError());
    fail(send(), new MeshTimeoutError('svc', 50, 'per-try'));
    breakBody(send(), 200, resetError());
    expect(ep.isEjected(clock())).toBe(true);
  });

  it('counts cancellations as nothing: discarded hedges and aborted callers never eject', () => {
    const { clock, ep, send } = setup();
    for (let i = 0; i < 10; i++) fail(send(), DISCARDED);
    for (let i = 0; i < 10; i++) fail(send(), new MeshAbortedError('svc'));
    expect(ep.isEjected(clock())).toBe(false);
  });

  it('a success in between resets the consecutive count; a caller who stops reading a 200 is a success', () => {
    const { clock, ep, send } = setup();
    answer(send(), 503);
    answer(send(), 503);
    breakBody(send(), 200, DISCARDED);
    answer(send(), 503);
    answer(send(), 503);
    expect(ep.isEjected(clock())).toBe(false);
    answer(send(), 503);
    expect(ep.isEjected(clock())).toBe(true);
  });
});

describe('outlierResult: what an attempt’s outcome counts as', () => {
  const o = (status: number, error?: 'cancelled' | 'timeout' | 'connect' | 'reset' | 'other') => ({
    status,
    error,
    cause: undefined,
  });

  it('502, 503, 504 are gateway errors; any other status from 500 up is a 5xx', () => {
    expect(outlierResult(o(502))).toBe('gateway');
    expect(outlierResult(o(503))).toBe('gateway');
    expect(outlierResult(o(504))).toBe('gateway');
    expect(outlierResult(o(500))).toBe('5xx');
    expect(outlierResult(o(501))).toBe('5xx');
    expect(outlierResult(o(599))).toBe('5xx');
  });

  it('a clean answer below 500 is a success; a failure is local-origin; a cancellation counts only after headers', () => {
    expect(outlierResult(o(499))).toBe('success');
    expect(outlierResult(o(200))).toBe('success');
    expect(outlierResult(o(0, 'connect'))).toBe('local');
    expect(outlierResult(o(200, 'reset'))).toBe('local');
    expect(outlierResult(o(0, 'timeout'))).toBe('local');
    expect(outlierResult(o(200, 'cancelled'))).toBe('success');
    expect(outlierResult(o(0, 'cancelled'))).toBeUndefined();
  });
});

describe('outlier layer: what reaches the detector', () => {
  function observed(outlierDetection: Record<string, unknown>) {
    const clock = fakeClock(5_000);
    const svc = testService({ trafficPolicy: { outlierDetection } }, ['10.0.0.1:80', '10.0.0.2:80'], clock);
    const [ep] = endpointsOf(svc);
    const seen: [string, string, number, number][] = [];
    const detector = svc.outlier;
    if (!detector || !ep) throw new Error('no detector');
    vi.spyOn(detector, 'observe').mockImplementation((e, result, all, now) => {
      seen.push([e.address, result, all.length, now]);
    });
    let below: DispatchHandler | undefined;
    const dispatch = outlierLayer(clock)((_ep, _req, h) => {
      below = h;
    });
    const send = () => {
      dispatch(ep, testRequest(svc), recorder());
      return below as DispatchHandler;
    };
    return { seen, send, clock };
  }

  it('each attempt once, with its endpoint, the service’s endpoints and the clock’s time', () => {
    const { seen, send, clock } = observed({});
    answer(send(), 503);
    clock.advance(10);
    answer(send(), 500);
    answer(send(), 200);
    fail(send(), refusedError());
    expect(seen).toEqual([
      ['10.0.0.1:80', 'gateway', 2, 5_000],
      ['10.0.0.1:80', '5xx', 2, 5_010],
      ['10.0.0.1:80', 'success', 2, 5_010],
      ['10.0.0.1:80', 'local', 2, 5_010],
    ]);
  });

  it('a 5xx whose body then breaks is counted once, at the headers', () => {
    const { seen, send } = observed({});
    breakBody(send(), 500, resetError());
    expect(seen.map((s) => s[1])).toEqual(['5xx']);
  });

  it('with outlierDetectionHttpErrorCodes only those statuses fail; another 5xx is an answer like any other', () => {
    const { seen, send } = observed({ outlierDetectionHttpErrorCodes: [429, 503] });
    answer(send(), 429);
    answer(send(), 503);
    answer(send(), 500);
    breakBody(send(), 500, resetError());
    answer(send(), 404);
    fail(send(), refusedError());
    expect(seen.map((s) => s[1])).toEqual(['5xx', 'gateway', 'success', 'local', 'success', 'local']);
  });

  it('with outlier detection off, the handler is passed through untouched', () => {
    const svc = testService({ trafficPolicy: { outlierDetection: { enabled: false } } });
    const [ep] = endpointsOf(svc);
    const r = recorder();
    let got: DispatchHandler | undefined;
    outlierLayer(fakeClock())((_ep, _req, h) => {
      got = h;
    })(ep as never, testRequest(svc), r);
    expect(got).toBe(r);
  });
});
