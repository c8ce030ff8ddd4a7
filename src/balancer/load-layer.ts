import { ForwardingHandler } from '../http/forwarding-handler.ts';
import type { DispatchController, DispatchHandler, EndpointLayer } from '../pipeline.ts';
import type { Endpoint } from './endpoint.ts';
import type { ServiceLimits } from './limits-layer.ts';
import type { Clock } from './types.ts';

/**
 * An error (refused, reset, timeout) counts as a round trip of at least this long, so a
 * black-hole endpoint that fails fast does not look like the fastest one (see docs/architecture.md).
 */
export const FAILURE_PENALTY_MS = 1_000;

/**
 * Per-endpoint load tracking: counts the request in flight (at its endpoint, and at its service
 * for the connectionPool limits checked above, src/balancer/limits-layer.ts) until its response
 * ends or fails, and feeds the time to response headers into the endpoint's peak-EWMA.
 */
export function trackLoad(clock: Clock): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const limits = req.service.limits;
    ep.inflight++;
    ep.attempts++;
    limits.active++;
    next(ep, req, new LoadHandler(ep, limits, handler, clock, clock()));
  };
}

/** Ended by the mesh or the caller (a losing hedge, a retried answer, the caller's abort). */
function isOnPurpose(err: Error): boolean {
  return (
    err.name === 'Discarded' ||
    err.name === 'AbortError' ||
    (err as { code?: unknown }).code === 'UND_ERR_ABORTED'
  );
}

/**
 * Attempts whose time so far is only a lower bound of the RTT, not failures of the endpoint for
 * the estimate: those ended on purpose, and a per-try timeout (a flat 1 s penalty would make one
 * cold-start timeout steer traffic away from a fast endpoint for many seconds). A per-try timeout
 * still counts in the endpoint's `errors`.
 */
function isCancellation(err: Error): boolean {
  return isOnPurpose(err) || (err as { code?: unknown }).code === 'MESHWORK_ERR_TIMEOUT';
}

class LoadHandler extends ForwardingHandler {
  readonly #ep: Endpoint;
  readonly #limits: ServiceLimits;
  readonly #clock: Clock;
  readonly #start: number;
  #observed = false;
  #done = false;

  constructor(ep: Endpoint, limits: ServiceLimits, handler: DispatchHandler, clock: Clock, start: number) {
    super(handler);
    this.#ep = ep;
    this.#limits = limits;
    this.#clock = clock;
    this.#start = start;
  }

  #finish(failed: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#ep.inflight--;
    this.#limits.active--;
    if (!this.#observed) {
      const now = this.#clock();
      const rtt = now - this.#start;
      this.#ep.ewma.observe(failed ? Math.max(rtt, FAILURE_PENALTY_MS) : rtt, now);
      this.#observed = true;
    }
  }

  override onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: any,
    socket: any,
  ): void {
    this.#finish(false);
    super.onRequestUpgrade(controller, statusCode, headers, socket);
  }

  override onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: any,
    statusMessage?: string,
  ): void {
    if (!this.#observed) {
      const now = this.#clock();
      this.#ep.ewma.observe(now - this.#start, now);
      this.#observed = true;
    }
    if (statusCode >= 500) this.#ep.responses5xx++;
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  override onResponseEnd(controller: DispatchController, trailers: any): void {
    this.#finish(false);
    super.onResponseEnd(controller, trailers);
  }

  override onResponseError(controller: DispatchController, err: Error): void {
    // An attempt cancelled on purpose (a losing hedge, a retried answer, the caller's abort) is
    // no failure of the endpoint: its time so far is only a lower bound of its RTT, so it may
    // raise the estimate but never lower it, and there is no failure penalty.
    if (isCancellation(err) && !this.#observed) {
      const now = this.#clock();
      if (now - this.#start > this.#ep.ewma.estimate(now)) this.#ep.ewma.observe(now - this.#start, now);
      this.#observed = true;
    }
    if (!this.#done && !isOnPurpose(err)) this.#ep.errors++;
    this.#finish(true);
    super.onResponseError(controller, err);
  }
}
