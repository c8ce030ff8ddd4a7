/**
 * THE LAYER ORDER. This is the one place where it is written down.
 *
 *   caller (mesh.fetch / mesh.dispatcher / undici.request)
 *     │  normalize: service lookup, lowercase headers, Host = original authority   (src/dispatcher.ts)
 *     ▼
 *   ── per-request layers (above the balancer), outermost first ──
 *     context   → gateway context + trace headers from AsyncLocalStorage          (issue 7)
 *     routing   → match route, pick destination/subset, rewrites, header edits   (src/routing/layer.ts)
 *     mirror    → fire-and-forget copy to the mirror service, bounded            (src/routing/mirror-layer.ts)
 *     fault     → Istio fault injection, decided once, before retries            (src/fault/layer.ts)
 *     retry     → retries, budget, hedging, route timeout, deadline              (issue 4)
 *     ▼
 *   ── balance: pick one endpoint of the subset (P2C peak-EWMA by default) ──
 *     ▼
 *   ── per-endpoint layers (below the balancer), outermost first ──
 *     load      → in-flight count + peak-EWMA RTT sample                          (src/balancer/load-layer.ts)
 *     outlier   → consecutive errors / success rate → ejection                    (issue 4)
 *     chaos     → attempt-level chaos (latency/reset/abort), seen by everything above (src/fault/layer.ts)
 *     pool      → the endpoint's own undici Pool (TLS in its connector)          (src/balancer/endpoint.ts)
 *
 * Layers marked with an issue number are added to the arrays below as those issues land.
 */
import { balance } from './balancer/balance-layer.ts';
import { trackLoad } from './balancer/load-layer.ts';
import type { Clock } from './balancer/types.ts';
import { chaos, faults } from './fault/layer.ts';
import type { Dispatch, EndpointDispatch, EndpointLayer, Layer } from './pipeline.ts';
import { routing } from './routing/layer.ts';
import type { MirrorGate } from './routing/mirror.ts';
import { mirroring } from './routing/mirror-layer.ts';
import type { ServiceRuntime } from './service.ts';

export interface StackOptions {
  clock: Clock;
  services: ReadonlyMap<string, ServiceRuntime>;
  mirrorGate: MirrorGate;
  /** Random source for weighted splits, fault and chaos draws (tests pass a seeded one). */
  random?: () => number;
}

export function buildStack(opts: StackOptions): Dispatch {
  const random = opts.random ?? Math.random;
  const requestLayers: Layer[] = [
    routing(opts.services, random),
    mirroring(opts.services, opts.mirrorGate, random),
    faults(random),
  ];
  const endpointLayers: EndpointLayer[] = [trackLoad(opts.clock), chaos(random)];

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
