import { ErrorCodes, isMeshworkError } from '../errors.ts';
import { ForwardingHandler } from '../http/forwarding-handler.ts';
import type { DispatchController, DispatchHandler, EndpointLayer } from '../pipeline.ts';
import type { Endpoint } from './endpoint.ts';
import type { Outcome, OutlierDetector } from './outlier.ts';
import type { Clock } from './types.ts';

/**
 * Feeds each attempt's outcome into the service's outlier detector: the status at response
 * start (5xx, gateway error 502/503/504, or success), or a local-origin failure (refused, reset,
 * per-try timeout). Aborts by the caller or by the retry layer count as nothing.
 */
export function detectOutliers(clock: Clock): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const detector = req.service.outlier;
    if (!detector) return next(ep, req, handler);
    next(ep, req, new OutlierHandler(detector, ep, req.service.endpoints.all.endpoints, handler, clock));
  };
}

function isNeutralError(err: Error): boolean {
  if (isMeshworkError(err)) return !isMeshworkError(err, ErrorCodes.TIMEOUT);
  const code = (err as { code?: unknown }).code;
  return code === 'UND_ERR_ABORTED' || err.name === 'AbortError' || err.name === 'Discarded';
}

class OutlierHandler extends ForwardingHandler {
  readonly #detector: OutlierDetector;
  readonly #ep: Endpoint;
  readonly #all: readonly Endpoint[];
  readonly #clock: Clock;
  #seen = false;

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

  #observe(outcome: Outcome): void {
    if (this.#seen) return;
    this.#seen = true;
    this.#detector.observe(this.#ep, outcome, this.#all, this.#clock());
  }

  override onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: any,
    socket: any,
  ): void {
    this.#observe('success');
    super.onRequestUpgrade(controller, statusCode, headers, socket);
  }

  override onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: any,
    statusMessage?: string,
  ): void {
    this.#observe(
      statusCode === 502 || statusCode === 503 || statusCode === 504
        ? 'gateway'
        : statusCode >= 500
          ? '5xx'
          : 'success',
    );
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  override onResponseEnd(controller: DispatchController, trailers: any): void {
    super.onResponseEnd(controller, trailers);
  }

  override onResponseError(controller: DispatchController, err: Error): void {
    if (!isNeutralError(err)) this.#observe('local');
    else this.#seen = true;
    super.onResponseError(controller, err);
  }
}
