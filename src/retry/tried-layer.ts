import type { EndpointLayer } from '../pipeline.ts';

/** Records the endpoint an attempt went to, so that a retry prefers another one (Istio previous_hosts). */
export function recordTried(): EndpointLayer {
  return (next) => (ep, req, handler) => {
    req.tried?.add(ep);
    next(ep, req, handler);
  };
}
