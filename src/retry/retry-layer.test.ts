import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { endpointsOf, testRequest, testService } from '../../test/support/layers.ts';
import type { Endpoint } from '../balancer/endpoint.ts';
import { type DispatchHandler, deadController } from '../pipeline.ts';
import { retryLayer } from './retry-layer.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const controller = deadController;

function request() {
  return testRequest(testService({ retryBudget: { enabled: false } }));
}

describe('retry layer: a finished request', () => {
  it("lets go of the caller's handler even while the transport still holds the attempt", async () => {
    // The transport (undici) may keep a finished attempt's handler referenced for a while.
    const heldByTransport: DispatchHandler[] = [];
    const dispatch = retryLayer(() => 0)((_req, attempt) => {
      heldByTransport.push(attempt);
      attempt.onRequestStart?.(controller, {});
      attempt.onResponseStart?.(controller, 200, {}, 'OK');
      attempt.onResponseData?.(controller, Buffer.from('ok'));
      attempt.onResponseEnd?.(controller, {});
    });
    const calls: string[] = [];
    let ref: WeakRef<object> | undefined;
    (() => {
      const caller = {
        body: Buffer.alloc(256 * 1024), // what a caller's handler holds: the response body
        onRequestStart: () => calls.push('start'),
        onResponseStart: () => calls.push('headers'),
        onResponseData: () => calls.push('data'),
        onResponseEnd: () => calls.push('end'),
        onResponseError: () => calls.push('error'),
      };
      ref = new WeakRef(caller);
      dispatch(request(), caller);
    })();
    expect(calls).toEqual(['start', 'headers', 'data', 'end']);
    expect(heldByTransport).toHaveLength(1);
    for (let i = 0; i < 5 && ref?.deref() !== undefined; i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    expect(ref?.deref()).toBeUndefined();
  });
});

describe('retry layer: retries go to endpoints not tried yet', () => {
  it('after two 503s from two endpoints, the third attempt goes to the third one', async () => {
    const svc = testService({ retryBudget: { enabled: false } }, [
      '10.0.0.1:80',
      '10.0.0.2:80',
      '10.0.0.3:80',
    ]);
    const eps = endpointsOf(svc);
    const seen: string[] = [];
    // Stands in for the balancer and the tried layer: the first endpoint the request has not tried.
    const dispatch = retryLayer(
      () => performance.now(),
      () => 0,
    )((req, attempt) => {
      const ep = eps.find((e) => !req.tried?.has(e)) ?? (eps[0] as Endpoint);
      req.endpoint = ep;
      req.tried?.add(ep);
      seen.push(ep.address);
      attempt.onRequestStart?.(controller, {});
      const status = ep.address === '10.0.0.3:80' ? 200 : 503;
      attempt.onResponseStart?.(controller, status, {}, '');
      attempt.onResponseEnd?.(controller, {});
    });
    const status = await new Promise<number>((resolve, reject) => {
      let got = 0;
      dispatch(testRequest(svc), {
        onResponseStart: (_c, s) => {
          got = s;
        },
        onResponseEnd: () => resolve(got),
        onResponseError: (_c, err) => reject(err),
      });
    });
    expect(status).toBe(200);
    expect(seen).toEqual(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']);
  });
});
