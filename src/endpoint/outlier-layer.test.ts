import { describe, expect, it } from 'vitest';
import {
  answer,
  breakBody,
  endpointsOf,
  fail,
  fakeClock,
  recorder,
  resetError,
  testRequest,
  testService,
} from '../../test/support/layers.ts';
import { MeshAbortedError, MeshTimeoutError } from '../errors.ts';
import { DISCARDED } from '../outcome.ts';
import type { DispatchHandler } from '../pipeline.ts';
import { outlierLayer } from './outlier-layer.ts';

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
