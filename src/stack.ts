/**
 * THE LAYER ORDER. This is the one place where it is written down.
 *
 *   caller (mesh.fetch / mesh.dispatcher / undici.request)
 *     │  normalize: service lookup, lowercase headers, Host = original authority   (src/dispatcher.ts)
 *     ▼
 *   ── per-request layers (above the balancer), outermost first ──
 *     context   → gateway context + trace headers from AsyncLocalStorage          (issue 7)
 *     routing   → match route, pick destination/subset, rewrites, header mutation (issue 6)
 *     fault     → Istio fault injection, decided once, before retries            (issue 6)
 *     breaker   → service-level circuit breaker (opossum), judges final outcomes  (src/breaker/breaker-layer.ts)
 *     retry     → retries, budget, hedging, route timeout, deadline              (src/retry/retry-layer.ts)
 *     ▼
 *   ── balance: pick one endpoint of the subset (P2C peak-EWMA by default) ──
 *     ▼
 *   ── per-endpoint layers (below the balancer), outermost first ──
 *     limits    → connectionPool http2MaxRequests / http1MaxPendingRequests → UO (src/balancer/limits-layer.ts)
 *     tried     → records the endpoint so a retry prefers another one            (src/retry/tried-layer.ts)
 *     load      → in-flight count + peak-EWMA RTT sample                          (src/balancer/load-layer.ts)
 *     outlier   → consecutive errors / success rate → ejection                    (src/balancer/outlier-layer.ts)
 *     pool      → the endpoint's own undici Pool (TLS in its connector)          (src/balancer/endpoint.ts)
 *
 * Layers marked with an issue number are added to the arrays below as those issues land.
 */
import { balance } from './balancer/balance-layer.ts';
import { enforceLimits } from './balancer/limits-layer.ts';
import { trackLoad } from './balancer/load-layer.ts';
import { detectOutliers } from './balancer/outlier-layer.ts';
import type { Clock } from './balancer/types.ts';
import { breakerLayer } from './breaker/breaker-layer.ts';
import type { Dispatch, EndpointDispatch, EndpointLayer, Layer } from './pipeline.ts';
import { retryLayer } from './retry/retry-layer.ts';
import { recordTried } from './retry/tried-layer.ts';

export interface StackOptions {
  clock: Clock;
}

export function buildStack(opts: StackOptions): Dispatch {
  const requestLayers: Layer[] = [breakerLayer(), retryLayer(opts.clock)];
  const endpointLayers: EndpointLayer[] = [
    enforceLimits(),
    recordTried(),
    trackLoad(opts.clock),
    detectOutliers(opts.clock),
  ];

  const send: EndpointDispatch = (ep, req, handler) => {
    ep.dispatch(req.opts as never, handler);
  };
  let endpointDispatch = send;
  for (let i = endpointLayers.length - 1; i >= 0; i--)
    endpointDispatch = (endpointLayers[i] as EndpointLayer)(endpointDispatch);

  let dispatch = balance(endpointDispatch, opts.clock);
  for (let i = requestLayers.length - 1; i >= 0; i--) dispatch = (requestLayers[i] as Layer)(dispatch);
  return dispatch;
}
