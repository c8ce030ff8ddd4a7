import { CircuitOpenError } from '../errors.ts';
import { respondLocally } from '../http/synthetic.ts';
import { type Outcome, OutcomeHandler } from '../outcome.ts';
import { type DispatchHandler, failRequest, type Layer } from '../pipeline.ts';
import type { Fallback, Settle } from './breaker.ts';

/**
 * The service-level circuit breaker, above retries: it judges the outcome the caller gets
 * (after retries), once per request. A 5xx answer, an error, or a body that broke is a failure;
 * the caller's own abort counts as nothing against the service. When open, the request fails
 * fast with MESHWORK_ERR_CIRCUIT_OPEN, or gets the service's fallback answer when one was given
 * to createMesh.
 */
export function breakerLayer(): Layer {
  return (next) => (req, handler) => {
    const breaker = req.service.breaker;
    if (!breaker) return next(req, handler);
    const settle = breaker.tryAcquire();
    if (settle) return next(req, new BreakerHandler(handler, settle));
    const fb = req.service.fallback;
    if (fb) return deliverFallback(handler, fb, req.service.name, String(req.opts.method), req.opts.path);
    failRequest(handler, new CircuitOpenError(req.service.name));
  };
}

function deliverFallback(
  handler: DispatchHandler,
  fb: Fallback,
  service: string,
  method: string,
  path: string,
): void {
  let res: ReturnType<Fallback>;
  try {
    res = fb({ service, method, path });
  } catch (err) {
    failRequest(handler, err instanceof Error ? err : new Error(String(err)));
    return;
  }
  respondLocally(handler, res.status, res.body ?? '', {
    'x-meshwork-fallback': 'circuit-open',
    ...res.headers,
  });
}

class BreakerHandler extends OutcomeHandler {
  #settle: Settle | undefined;

  constructor(handler: DispatchHandler, settle: Settle) {
    super(handler);
    this.#settle = settle;
  }

  #done(ok: boolean): void {
    const s = this.#settle;
    this.#settle = undefined;
    s?.(ok);
  }

  protected override onHeaders(status: number): void {
    // A 5xx is a failure whatever its body does: settled at once.
    if (status >= 500) this.#done(false);
  }

  protected override onDone(o: Outcome): void {
    // The caller's abort says nothing about the service: released without a failure.
    this.#done(o.error === undefined || o.error === 'cancelled');
  }
}
