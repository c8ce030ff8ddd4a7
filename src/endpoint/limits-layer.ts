import { OverflowError } from '../errors.ts';
import { type EndpointLayer, failRequest } from '../pipeline.ts';

/**
 * connectionPool limits, checked before anything is sent, outermost of the endpoint layers:
 * `http.http2MaxRequests` bounds requests in flight to the whole service; `http.http1MaxPendingRequests`
 * bounds requests queued at one endpoint waiting for a connection (in flight beyond
 * `tcp.maxConnections`, HTTP/1.1 carrying one request per connection). Overflow fails fast with
 * MESHWORK_ERR_OVERFLOW (Envoy's "UO").
 */
export function limitsLayer(): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const lim = req.service.limits;
    if (lim.active >= lim.maxRequests) {
      lim.overflows++;
      return failRequest(
        handler,
        new OverflowError(req.service.name, 'connectionPool.http.http2MaxRequests', lim.maxRequests),
      );
    }
    // The endpoint's own pool limits: its cluster's (a subset's or a port's connectionPool).
    const maxPending = ep.maxPending ?? lim.maxPending;
    if (ep.inflight - ep.maxConnections >= maxPending) {
      lim.overflows++;
      return failRequest(
        handler,
        new OverflowError(req.service.name, 'connectionPool.http.http1MaxPendingRequests', maxPending),
      );
    }
    // Counted in flight by the load layer below, which sees the end.
    next(ep, req, handler);
  };
}
