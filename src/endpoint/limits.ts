import { ENDPOINT_DEFAULTS } from '../balancer/endpoint.ts';

/** Envoy's circuit-breaker thresholds default to 1024 (max_pending_requests, max_requests). */
export const LIMIT_DEFAULTS = { maxPendingRequests: 1024, maxRequests: 1024 } as const;

type LimitsConfig =
  | {
      tcp?: { maxConnections?: number | undefined } | undefined;
      http?:
        | { http1MaxPendingRequests?: number | undefined; http2MaxRequests?: number | undefined }
        | undefined;
    }
  | undefined;

/** Per-service request accounting for connectionPool limits. */
export class ServiceLimits {
  maxRequests: number;
  maxPending: number;
  maxConnections: number;
  /** Attempts in flight to the whole service: kept by the load layer, with each endpoint's own count. */
  active = 0;
  overflows = 0;

  constructor(cp: LimitsConfig) {
    this.maxRequests = 0;
    this.maxPending = 0;
    this.maxConnections = 0;
    this.reconfigure(cp);
  }

  /** New limits from a live config update; the counts of requests in flight stay. */
  reconfigure(cp: LimitsConfig): void {
    this.maxRequests = cp?.http?.http2MaxRequests ?? LIMIT_DEFAULTS.maxRequests;
    this.maxPending = cp?.http?.http1MaxPendingRequests ?? LIMIT_DEFAULTS.maxPendingRequests;
    this.maxConnections = cp?.tcp?.maxConnections ?? ENDPOINT_DEFAULTS.maxConnections;
  }
}
