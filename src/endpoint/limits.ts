import { ENDPOINT_DEFAULTS } from '../balancer/endpoint.ts';

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
