/**
 * THE LAYER ORDER. This is the one place where it is written down.
 *
 *   caller (mesh.fetch / mesh.dispatcher / undici.request)
 *     │  normalize: service lookup, lowercase headers, Host = original authority   (src/dispatcher.ts)
 *     ▼
 *   ── per-request layers (above the balancer), outermost first ──
 *     context   → gateway context + trace headers from AsyncLocalStorage          (src/context/layer.ts)
 *     routing   → match route, pick destination/subset, rewrites, header mutation (issue 6)
 *     fault     → Istio fault injection, decided once, before retries            (issue 6)
 *     retry     → retries, budget, hedging, route timeout, deadline              (issue 4)
 *     ▼
 *   ── balance: pick one endpoint of the subset (P2C peak-EWMA by default) ──
 *     ▼
 *   ── per-endpoint layers (below the balancer), outermost first ──
 *     load      → in-flight count + peak-EWMA RTT sample                          (src/balancer/load-layer.ts)
 *     outlier   → consecutive errors / success rate → ejection                    (issue 4)
 *     pool      → the endpoint's own undici Pool (TLS in its connector)          (src/balancer/endpoint.ts)
 *
 * Layers marked with an issue number are added to the arrays below as those issues land.
 */
import { balance } from './balancer/balance-layer.ts';
import { trackLoad } from './balancer/load-layer.ts';
import type { Clock } from './balancer/types.ts';
import { contextLayer } from './context/layer.ts';
import type { ContextRuntime } from './context/runtime.ts';
import type { Dispatch, EndpointDispatch, EndpointLayer, Layer } from './pipeline.ts';

export interface StackOptions {
  clock: Clock;
  context: ContextRuntime;
}

export function buildStack(opts: StackOptions): Dispatch {
  const requestLayers: Layer[] = [contextLayer(opts.context)];
  const endpointLayers: EndpointLayer[] = [trackLoad(opts.clock)];

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
