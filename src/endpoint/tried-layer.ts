import type { EndpointLayer } from '../pipeline.ts';

/**
 * Records the endpoint an attempt went to: on the attempt (for telemetry: which endpoint a retry
 * moves away from) and in the request's tried set, so a retry prefers another one (Istio
 * previous_hosts).
 */
export function triedLayer(): EndpointLayer {
  return (next) => (ep, req, handler) => {
    req.endpoint = ep;
    req.tried?.add(ep);
    next(ep, req, handler);
  };
}
