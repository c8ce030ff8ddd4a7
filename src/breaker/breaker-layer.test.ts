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

describe('breaker layer: what counts, and the fallback', () => {
  it('without a breaker the handler is passed through untouched', () => {
    const svc = testService();
    const r = recorder();
    let got: DispatchHandler | undefined;
    breakerLayer()((_req, h) => {
      got = h;
    })(testRequest(svc), r);
    expect(got).toBe(r);
  });

  it('a 5xx is one failure (settled at the headers, not again at the end); a 4xx or a 499 is a success', async () => {
    const { svc, send } = setup();
    answer(send() as DispatchHandler, 404);
    answer(send() as DispatchHandler, 499);
    answer(send() as DispatchHandler, 200);
    await tick();
    expect(svc.breaker?.stats()).toMatchObject({ failures: 0, successes: 3 });
    answer(send() as DispatchHandler, 500);
    await tick();
    expect(svc.breaker?.stats()).toMatchObject({ failures: 1, successes: 3 });
  });

  it('a cancelled answer (the caller stopped reading) is released as a success', async () => {
    const { svc, send } = setup();
    for (let i = 0; i < 3; i++) breakBody(send() as DispatchHandler, 200, new MeshAbortedError('svc'));
    await tick();
    expect(svc.breaker?.stats()).toMatchObject({ failures: 0, successes: 3 });
  });

  function openWith(fallback: unknown) {
    const { svc, send } = setup();
    (svc as { fallback: unknown }).fallback = fallback;
    answer(send() as DispatchHandler, 503);
    answer(send() as DispatchHandler, 503);
    return { svc, send };
  }

  it('the fallback is asked with the service, method and path; its headers win over the marker; no body is empty', async () => {
    const asked: unknown[] = [];
    const { send } = openWith((req: unknown) => {
      asked.push(req);
      return { status: 299, headers: { 'x-meshwork-fallback': 'mine' } };
    });
    await tick();
    const headers: Record<string, unknown>[] = [];
    const chunks: string[] = [];
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
    expect(asked).toEqual([{ service: 'svc', method: 'GET', path: '/' }]);
    expect(r.status).toBe(299);
    expect(headers[0]?.['x-meshwork-fallback']).toBe('mine');
    expect(chunks.join('')).toBe('');
  });

  it('a fallback that throws fails the request with its error (a thrown non-Error becomes one)', async () => {
    const boom = new Error('fallback broke');
    const a = openWith(() => {
      throw boom;
    });
    await tick();
    const r = recorder();
    a.send(r);
    expect(r.calls).toEqual(['start', 'error Error']);
    expect(r.errors[0]).toBe(boom);

    const b = openWith(() => {
      throw 'just a string';
    });
    await tick();
    const r2 = recorder();
    b.send(r2);
    expect(r2.errors[0]).toBeInstanceOf(Error);
    expect(r2.errors[0]?.message).toBe('just a string');
  });
});
