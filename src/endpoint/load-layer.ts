import type { Endpoint } from '../balancer/endpoint.ts';
import type { Clock } from '../clock.ts';
import { isFailure, type Outcome, OutcomeHandler } from '../outcome.ts';
import type { DispatchHandler, EndpointLayer } from '../pipeline.ts';
import type { ServiceLimits } from './limits.ts';

/**
 * A failed attempt (refused, reset, a body that broke) counts as a round trip of at least this
 * long, so an endpoint that fails fast does not look like the fastest one (see docs/architecture.md).
 */
export const FAILURE_PENALTY_MS = 1_000;

/**
 * Per-endpoint load tracking: counts the attempt in flight (at its endpoint, and at its service
 * for the connectionPool limits checked above) until it is done, whatever way it ends, and feeds
 * the time to response headers into the endpoint's peak-EWMA.
 */
export function loadLayer(clock: Clock): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const limits = req.service.limits;
    ep.inflight++;
    ep.attempts++;
    limits.active++;
    next(ep, req, new LoadHandler(ep, limits, handler, clock, clock()));
  };
}

class LoadHandler extends OutcomeHandler {
  readonly #ep: Endpoint;
  readonly #limits: ServiceLimits;
  readonly #clock: Clock;
  readonly #start: number;
  #observed = false;
  /** When the headers came (the clean end reuses it: one clock read less per request). */
  #headersAt = 0;

  constructor(ep: Endpoint, limits: ServiceLimits, handler: DispatchHandler, clock: Clock, start: number) {
    super(handler);
    this.#ep = ep;
    this.#limits = limits;
    this.#clock = clock;
    this.#start = start;
  }

  protected override onHeaders(status: number): void {
    const now = this.#clock();
    const ep = this.#ep;
    if (status >= 500) {
      // A fast 5xx is no evidence of fast successes: it may raise the estimate, never lower it.
      ep.ewma.raise(now - this.#start, now);
      ep.responses5xx++;
    } else ep.ewma.observe(now - this.#start, now);
    this.#observed = true;
    this.#headersAt = now;
  }

  protected override onDone(o: Outcome): void {
    const ep = this.#ep;
    ep.inflight--;
    this.#limits.active--;
    const kind = o.error;
    if (kind === undefined) {
      ep.failures.observe(o.status >= 500, this.#headersAt);
      return;
    }
    const now = this.#clock();
    // Failure-aware cost: a cancellation before the headers says nothing about the endpoint; after
    // them the status does (a 503 the retry layer discarded to retry it is still a failure).
    if (kind !== 'cancelled' || o.status > 0) ep.failures.observe(isFailure(o), now);
    const elapsed = now - this.#start;
    if (kind === 'cancelled' || kind === 'timeout') {
      // Ended on purpose (a losing hedge, a retried answer, the caller's abort) or by a per-try
      // timeout: the time so far is only a lower bound of the RTT. It may raise the estimate but
      // never lower it, and there is no failure penalty (one cold-start timeout must not steer
      // traffic away from a fast endpoint for many seconds). A timeout still counts in `errors`.
      if (!this.#observed) ep.ewma.raise(elapsed, now);
      if (kind === 'timeout') ep.errors++;
      return;
    }
    // A real failure, before the headers or in the body after them.
    ep.errors++;
    ep.ewma.observe(Math.max(elapsed, FAILURE_PENALTY_MS), now);
  }
}
