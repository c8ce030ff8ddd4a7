import { describe, expect, it } from 'vitest';
import { answer, fakeClock, recorder, testRequest, testService } from '../test/support/layers.ts';
import type { Endpoint } from './balancer/endpoint.ts';
import { validateConfig } from './config/load.ts';
import { ContextRuntime } from './context/runtime.ts';
import type { EndpointDispatch } from './pipeline.ts';
import { MirrorGate } from './routing/mirror.ts';
import { compose, endpointLayers, requestLayers, type StackOptions } from './stack.ts';
import { silentLogger } from './telemetry/logger.ts';

const tick = () => new Promise((r) => setTimeout(r, 5));

/** The real layers in their real order, over a bottom that answers every attempt with `status`. */
function stackWith(cfg: Record<string, unknown>, status: number) {
  const clock = fakeClock();
  const svc = testService(cfg, ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'], clock);
  const config = validateConfig({ services: {} });
  const opts: StackOptions = {
    clock,
    services: new Map([['svc', svc]]),
    mirrorGate: new MirrorGate(),
    random: () => 0.5,
    telemetry: true,
    context: new ContextRuntime(config.context, config.authorization, { clock, logger: silentLogger }),
  };
  const sent: Endpoint[] = [];
  const bottom: EndpointDispatch = (ep, _req, h) => {
    sent.push(ep);
    answer(h, status);
  };
  const dispatch = compose(requestLayers(opts), endpointLayers(opts), bottom, clock);
  const run = () =>
    new Promise<number>((resolve, reject) => {
      const r = recorder();
      dispatch(testRequest(svc), {
        ...r,
        onResponseEnd: () => resolve(r.status),
        onResponseError: (_c, err) => reject(err),
      });
    });
  return { svc, sent, run };
}

const noBackoff = { attempts: 2, retryOn: '5xx', perTryTimeout: '1s' };

describe('the stack order and its consequences', () => {
  it('the breaker (above retry) judges each request once, however many attempts it took', async () => {
    const { svc, sent, run } = stackWith(
      {
        retries: noBackoff,
        retryBudget: { enabled: false },
        trafficPolicy: { circuitBreaker: { volumeThreshold: 100 }, outlierDetection: { enabled: false } },
      },
      503,
    );
    expect(await run()).toBe(503);
    await tick();
    expect(sent).toHaveLength(3);
    expect(svc.breaker?.stats().failures).toBe(1);
  });

  it('each attempt goes through the balancer and the endpoint layers: retries land on endpoints not tried yet', async () => {
    const { svc, sent, run } = stackWith(
      {
        retries: noBackoff,
        retryBudget: { enabled: false },
        trafficPolicy: { outlierDetection: { enabled: false } },
      },
      503,
    );
    await run();
    expect(new Set(sent).size).toBe(3);
    const eps = [...svc.endpoints.endpoints()];
    expect(eps.map((e) => e.attempts)).toEqual([1, 1, 1]);
    expect(eps.every((e) => e.inflight === 0)).toBe(true);
    expect(svc.limits.active).toBe(0);
  });

  it('an injected fault (above retry) is answered once and never retried, and nothing is sent', async () => {
    const { sent, run } = stackWith(
      {
        retries: noBackoff,
        http: [
          { fault: { abort: { httpStatus: 503, percentage: { value: 100 } } }, route: [{ destination: {} }] },
        ],
      },
      200,
    );
    expect(await run()).toBe(503);
    expect(sent).toHaveLength(0);
  });

  it('attempt-level chaos (innermost) is seen by retries and by outlier detection as a real failure', async () => {
    const { svc, sent, run } = stackWith(
      {
        retries: noBackoff,
        retryBudget: { enabled: false },
        trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1, maxEjectionPercent: 100 } },
        http: [
          { chaos: { abort: { httpStatus: 503, percentage: { value: 100 } } }, route: [{ destination: {} }] },
        ],
      },
      200,
    );
    expect(await run()).toBe(503);
    expect(sent).toHaveLength(0);
    const eps = [...svc.endpoints.endpoints()];
    expect(eps.reduce((n, e) => n + e.attempts, 0)).toBe(3);
    // Every endpoint but the last available one (never ejected) was ejected.
    expect(eps.filter((e) => e.ejectedUntil > 0)).toHaveLength(2);
  });
});
