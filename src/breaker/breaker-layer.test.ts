import { describe, expect, it } from 'vitest';
import {
  answer,
  breakBody,
  fail,
  recorder,
  resetError,
  testRequest,
  testService,
} from '../../test/support/layers.ts';
import { MeshAbortedError } from '../errors.ts';
import type { DispatchHandler } from '../pipeline.ts';
import { breakerLayer } from './breaker-layer.ts';

const tick = () => new Promise((r) => setImmediate(r));
const breakerCfg = {
  trafficPolicy: {
    circuitBreaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeout: '30s' },
  },
};

function setup(fallbacks?: boolean) {
  const svc = testService(breakerCfg);
  if (fallbacks)
    (svc as { fallback: unknown }).fallback = () => ({
      status: 200,
      headers: { 'X-From': 'fallback' },
      body: 'cached',
    });
  let below: DispatchHandler | undefined;
  const dispatch = breakerLayer()((_req, h) => {
    below = h;
  });
  const send = (r = recorder()) => {
    below = undefined;
    dispatch(testRequest(svc), r);
    return below as DispatchHandler | undefined;
  };
  return { svc, send };
}

describe('breaker layer', () => {
  it('opens after failures and then fails fast with MESHWORK_ERR_CIRCUIT_OPEN, through the one fail path', async () => {
    const { svc, send } = setup();
    answer(send() as DispatchHandler, 503);
    fail(send() as DispatchHandler, resetError());
    await tick();
    expect(svc.breaker?.state).toBe('open');
    const r = recorder();
    expect(send(r)).toBeUndefined();
    expect(r.calls).toEqual(['start', 'error MESHWORK_ERR_CIRCUIT_OPEN']);
  });

  it('a body that breaks after a 200 is a failure', async () => {
    const { svc, send } = setup();
    breakBody(send() as DispatchHandler, 200, resetError());
    breakBody(send() as DispatchHandler, 200, resetError());
    await tick();
    expect(svc.breaker?.stats().failures).toBe(2);
    expect(svc.breaker?.state).toBe('open');
  });

  it("the caller's abort is no failure of the service", async () => {
    const { svc, send } = setup();
    for (let i = 0; i < 4; i++) fail(send() as DispatchHandler, new MeshAbortedError('svc'));
    await tick();
    expect(svc.breaker?.stats().failures).toBe(0);
    expect(svc.breaker?.state).toBe('closed');
  });

  it("answers with the service's fallback while open, through the one local-answer path", async () => {
    const { send } = setup(true);
    answer(send() as DispatchHandler, 503);
    answer(send() as DispatchHandler, 503);
    await tick();
    const chunks: string[] = [];
    const headers: Record<string, unknown>[] = [];
    const r = recorder();
    send({
      ...r,
      onResponseStart: (c, status, h) => {
        headers.push(h);
        r.onResponseStart(c, status, h);
      },
      onResponseData: (_c, chunk) => {
        chunks.push(chunk.toString());
      },
    });
    expect(r.calls).toEqual(['start', 'headers 200', 'end']);
    expect(chunks.join('')).toBe('cached');
    expect(headers[0]).toMatchObject({
      'x-meshwork-fallback': 'circuit-open',
      'x-from': 'fallback',
      'content-length': '6',
    });
  });
});
