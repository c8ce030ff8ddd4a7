import { OverflowError } from '../errors.ts';
import { type EndpointLayer, failRequest } from '../pipeline.ts';
import { ENDPOINT_DEFAULTS } from './endpoint.ts';

/** Envoy's circuit-breaker thresholds default to 1024 (max_pending_requests, max_requests). */
export const LIMIT_DEFAULTS = { maxPendingRequests: 1024, maxRequests: 1024 } as const;

/** Per-service request accounting for connectionPool limits. */
export class ServiceLimits {
  readonly maxRequests: number;
  readonly maxPending: number;
  readonly maxConnections: number;
  /** Attempts in flight to the whole service: kept by the load layer, with each endpoint's own count. */
  active = 0;
  overflows = 0;

  constructor(
    cp:
      | {
          tcp?: { maxConnections?: number | undefined } | undefined;
          http?:
            | { http1MaxPendingRequests?: number | undefined; http2MaxRequests?: number | undefined }
            | undefined;
        }
      | undefined,
  ) {
    this.maxRequests = cp?.http?.http2MaxRequests ?? LIMIT_DEFAULTS.maxRequests;
    this.maxPending = cp?.http?.http1MaxPendingRequests ?? LIMIT_DEFAULTS.maxPendingRequests;
    this.maxConnections = cp?.tcp?.maxConnections ?? ENDPOINT_DEFAULTS.maxConnections;
  }
}

/**
 * connectionPool limits, checked before anything is sent, outermost of the endpoint layers:
 * `http.http2MaxRequests` bounds requests in flight to the whole service; `http.http1MaxPendingRequests`
 * bounds requests queued at one endpoint waiting for a connection (in flight beyond
 * `tcp.maxConnections`, HTTP/1.1 carrying one request per connection). Overflow fails fast with
 * MESHWORK_ERR_OVERFLOW (Envoy's "UO").
 */
export function enforceLimits(): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const lim = req.service.limits;
    if (lim.active >= lim.maxRequests) {
      lim.overflows++;
      return failRequest(
        handler,
        new OverflowError(req.service.name, 'connectionPool.http.http2MaxRequests', lim.maxRequests),
      );
    }
    if (ep.inflight - lim.maxConnections >= lim.maxPending) {
      lim.overflows++;
      return failRequest(
        handler,
        new OverflowError(req.service.name, 'connectionPool.http.http1MaxPendingRequests', lim.maxPending),
      );
    }
    // Counted in flight by the load layer below (src/balancer/load-layer.ts), which sees the end.
    next(ep, req, handler);
  };
}
