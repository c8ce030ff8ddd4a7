import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { type DispatchController, type DispatchHandler, newMeshRequest } from '../pipeline.ts';
import { compileRetryPolicy } from './policy.ts';
import { retryLayer } from './retry-layer.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const controller: DispatchController = {
  abort() {},
  pause() {},
  resume() {},
  aborted: false,
  paused: false,
  reason: null,
};

function request() {
  const service = {
    name: 'svc',
    retry: { policy: compileRetryPolicy({}), budget: undefined, hedgeBudget: undefined },
  };
  return newMeshRequest(service as never, { path: '/', method: 'GET', headers: {} } as never, 'svc', 0);
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
