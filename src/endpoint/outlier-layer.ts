import type { Endpoint } from '../balancer/endpoint.ts';
import type { Clock } from '../clock.ts';
import { type Outcome, OutcomeHandler } from '../outcome.ts';
import type { DispatchHandler, EndpointLayer } from '../pipeline.ts';
import type { OutlierDetector, OutlierResult } from './outlier.ts';

/**
 * Feeds each attempt's outcome into the service's outlier detector, once per attempt: a 5xx at
 * response start (gateway error for 502/503/504), a local-origin failure (refused, reset, per-try
 * timeout, or a body that broke after the headers, as Envoy counts an upstream reset after the
 * response started), or success when the response ended whole. Cancellations count as nothing.
 */
export function outlierLayer(clock: Clock): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const detector = req.service.outlier;
    if (!detector) return next(ep, req, handler);
    next(ep, req, new OutlierHandler(detector, ep, req.service.endpoints.all.endpoints, handler, clock));
  };
}

/** What outlier detection makes of an outcome; undefined = nothing to count. */
export function outlierResult(o: Outcome): OutlierResult | undefined {
  const status = o.status;
  if (status >= 500) return status === 502 || status === 503 || status === 504 ? 'gateway' : '5xx';
  const kind = o.error;
  if (kind === undefined) return 'success';
  // The caller stopped reading a good answer: the endpoint did its part.
  if (kind === 'cancelled') return status > 0 ? 'success' : undefined;
  return 'local';
}

class OutlierHandler extends OutcomeHandler {
  readonly #detector: OutlierDetector;
  readonly #ep: Endpoint;
  readonly #all: readonly Endpoint[];
  readonly #clock: Clock;

  constructor(
    detector: OutlierDetector,
    ep: Endpoint,
    all: readonly Endpoint[],
    handler: DispatchHandler,
    clock: Clock,
  ) {
    super(handler);
    this.#detector = detector;
    this.#ep = ep;
    this.#all = all;
    this.#clock = clock;
  }

  /** A failing status: a 5xx, or one of outlierDetectionHttpErrorCodes when they are given. */
  #fails(status: number): boolean {
    const codes = this.#detector.settings.errorCodes;
    return codes === undefined ? status >= 500 : codes.has(status);
  }

  protected override onHeaders(status: number): void {
    // A failing status is a failure whatever its body does: counted at once.
    if (this.#fails(status))
      this.#observe(status === 502 || status === 503 || status === 504 ? 'gateway' : '5xx');
  }

  protected override onDone(o: Outcome): void {
    if (this.#fails(o.status)) return; // counted at the headers
    // With outlierDetectionHttpErrorCodes, another status (a 5xx too) is an answer like any other.
    const result = o.status >= 500 ? (o.error === undefined ? 'success' : 'local') : outlierResult(o);
    if (result !== undefined) this.#observe(result);
  }

  #observe(result: OutlierResult): void {
    this.#detector.observe(this.#ep, result, this.#all, this.#clock());
  }
}
