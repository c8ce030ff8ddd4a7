import { describe, expect, it } from 'vitest';
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
import { MeshTimeoutError } from '../errors.ts';
import { DISCARDED } from '../outcome.ts';
import type { DispatchHandler } from '../pipeline.ts';
import { FAILURE_PENALTY_MS, loadLayer } from './load-layer.ts';

function setup() {
  const clock = fakeClock();
  const svc = testService({}, ['10.0.0.1:80'], clock);
  const [ep] = endpointsOf(svc);
  if (!ep) throw new Error('no endpoint');
  let below: DispatchHandler | undefined;
  const dispatch = loadLayer(clock)((_ep, _req, h) => {
    below = h;
  });
  const send = () => {
    dispatch(ep, testRequest(svc), recorder());
    return below as DispatchHandler;
  };
  return { clock, svc, ep, send };
}

describe('load layer', () => {
  it('counts an attempt in flight at its endpoint and service until it ends, however it ends', () => {
    const { svc, ep, send } = setup();
    const endings = [
      (h: DispatchHandler) => answer(h, 200),
      (h: DispatchHandler) => answer(h, 503),
      (h: DispatchHandler) => fail(h, resetError()),
      (h: DispatchHandler) => fail(h, DISCARDED),
      (h: DispatchHandler) => breakBody(h, 200, resetError()),
    ];
    for (const end of endings) {
      const h = send();
      expect(ep.inflight).toBe(1);
      expect(svc.limits.active).toBe(1);
      end(h);
      // A late callback after the end changes nothing.
      h.onResponseError?.(undefined as never, new Error('late'));
      expect(ep.inflight).toBe(0);
      expect(svc.limits.active).toBe(0);
    }
    expect(ep.attempts).toBe(5);
    expect(ep.responses5xx).toBe(1);
    expect(ep.errors).toBe(2); // the reset and the broken body; the discarded attempt is no error
  });

  it('feeds the time to headers into the estimate', () => {
    const { clock, ep, send } = setup();
    const h = send();
    clock.advance(80);
    answer(h, 200);
    const est = ep.ewma.estimate(clock());
    expect(est).toBeGreaterThanOrEqual(79);
    expect(est).toBeLessThan(81);
  });

  it('a caller who stops reading after the headers leaves the estimate at the time to headers', () => {
    const { clock, ep, send } = setup();
    const h = send();
    clock.advance(10);
    const c = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null };
    h.onRequestStart?.(c, {});
    h.onResponseStart?.(c, 200, {}, '');
    clock.advance(500);
    h.onResponseError?.(c, DISCARDED);
    expect(ep.ewma.estimate(clock())).toBeLessThan(50);
    expect(ep.errors).toBe(0);
  });

  it('counts every 5xx answer, 500 included, and nothing below', () => {
    const { ep, send } = setup();
    answer(send(), 500);
    answer(send(), 499);
    expect(ep.responses5xx).toBe(1);
  });

  it('a failure counts as a round trip of at least the failure penalty', () => {
    expect(FAILURE_PENALTY_MS).toBeGreaterThanOrEqual(100);
    const { clock, ep, send } = setup();
    const h = send();
    clock.advance(1);
    fail(h, refusedError());
    expect(ep.ewma.estimate(clock())).toBeGreaterThanOrEqual(FAILURE_PENALTY_MS);
  });

  it('a body that breaks after fast headers is a failure too', () => {
    const { clock, ep, send } = setup();
    const h = send();
    clock.advance(1);
    breakBody(h, 200, resetError());
    expect(ep.ewma.estimate(clock())).toBeGreaterThanOrEqual(FAILURE_PENALTY_MS);
  });

  it('a cancelled attempt is no failure: its time may raise the estimate but never lower it', () => {
    const { clock, ep, send } = setup();
    const before = ep.ewma.estimate(clock());
    const quick = send();
    clock.advance(1);
    fail(quick, DISCARDED);
    expect(ep.ewma.estimate(clock())).toBeCloseTo(before, 0);
    expect(ep.errors).toBe(0);
    const slow = send();
    clock.advance(500);
    fail(slow, DISCARDED);
    const est = ep.ewma.estimate(clock());
    expect(est).toBeGreaterThanOrEqual(499);
    expect(est).toBeLessThan(FAILURE_PENALTY_MS);
  });

  it('a per-try timeout counts as an error but not with the failure penalty', () => {
    const { clock, ep, send } = setup();
    const h = send();
    clock.advance(50);
    fail(h, new MeshTimeoutError('svc', 50, 'per-try'));
    expect(ep.errors).toBe(1);
    const est = ep.ewma.estimate(clock());
    expect(est).toBeGreaterThanOrEqual(49);
    expect(est).toBeLessThan(FAILURE_PENALTY_MS);
  });

  it('feeds failures into the failure-aware cost: a 503 the retry layer discarded counts, a cancellation before headers does not', () => {
    const { clock, ep, send } = setup();
    for (let i = 0; i < 8; i++) {
      const h = send();
      clock.advance(1);
      const c = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null };
      h.onRequestStart?.(c, {});
      h.onResponseStart?.(c, 503, {}, '');
      h.onResponseError?.(c, DISCARDED);
    }
    const afterFailures = ep.failures.rate(clock());
    expect(afterFailures).toBeGreaterThan(0.3);
    for (let i = 0; i < 8; i++) fail(send(), DISCARDED);
    expect(ep.failures.rate(clock())).toBeCloseTo(afterFailures, 5);
  });

  it('a fast 5xx never lowers the round-trip estimate', () => {
    const { clock, ep, send } = setup();
    const slow = send();
    clock.advance(40);
    answer(slow, 200);
    for (let i = 0; i < 5; i++) {
      const h = send();
      clock.advance(1);
      answer(h, 503);
    }
    expect(ep.ewma.estimate(clock())).toBeGreaterThan(39);
  });
});
