/**
 * THE LAYER ORDER. This is the one place where it is written down.
 *
 *   caller (mesh.fetch / mesh.dispatcher / undici.request)
 *     │  normalize: service lookup, lowercase headers, Host = original authority   (src/dispatcher.ts)
 *     ▼
 *   ── per-request layers (above the balancer), outermost first ──
 *     telemetry → CLIENT span, request duration/active metrics, request channels (src/telemetry/request-layer.ts)
 *     context   → gateway context + trace headers from AsyncLocalStorage          (src/context/layer.ts)
 *     routing   → match route, pick destination/subset, rewrites, header edits   (src/routing/layer.ts)
 *     body      → buffer a streamed body up to 64 KiB so it can be replayed      (src/retry/replay-body.ts)
 *     mirror    → fire-and-forget copy to the mirror service, bounded            (src/routing/mirror-layer.ts)
 *     fault     → Istio fault injection, decided once, before retries            (src/fault/layer.ts)
 *     breaker   → service-level circuit breaker (opossum), judges final outcomes  (src/breaker/breaker-layer.ts)
 *     retry     → retries, budget, hedging, route timeout, deadline              (src/retry/retry-layer.ts)
 *     ▼
 *   ── balance: pick one endpoint of the subset (P2C peak-EWMA by default) ──
 *     ▼
 *   ── per-endpoint layers (below the balancer), outermost first ──
 *     attempt   → one span event per attempt: endpoint, attempt number, retry reason (src/telemetry/request-layer.ts)
 *     limits    → connectionPool http2MaxRequests / http1MaxPendingRequests → UO (src/balancer/limits-layer.ts)
 *     tried     → records the endpoint so a retry prefers another one            (src/retry/tried-layer.ts)
 *     load      → in-flight counts (endpoint, service), peak-EWMA RTT sample, counters (src/balancer/load-layer.ts)
 *     outlier   → consecutive errors / success rate → ejection                    (src/balancer/outlier-layer.ts)
 *     chaos     → attempt-level chaos (latency/reset/abort), seen by everything above (src/fault/layer.ts)
 *     pool      → the endpoint's own undici Pool (TLS in its connector; server name from the final Host) (src/balancer/endpoint.ts)
 *
 *
 * Why telemetry is outermost: its CLIENT span is the *logical* request, so it must wrap
 * everything the caller waits for (routing, fault delays, every retry and backoff), and it
 * must be the active span when the context layer injects `traceparent`, so the upstream's
 * SERVER span becomes its child rather than a sibling. Routing's choices (route, subset) are
 * read off the request when it ends; retries and attempts land on the span as events. With no
 * OpenTelemetry SDK and no channel subscriber, the layer passes straight through.
 */
import { balance } from './balancer/balance-layer.ts';
import { enforceLimits } from './balancer/limits-layer.ts';
import { trackLoad } from './balancer/load-layer.ts';
import { detectOutliers } from './balancer/outlier-layer.ts';
import type { Clock } from './balancer/types.ts';
import { breakerLayer } from './breaker/breaker-layer.ts';
import { contextLayer } from './context/layer.ts';
import type { ContextRuntime } from './context/runtime.ts';
import { chaos, faults } from './fault/layer.ts';
import type { Dispatch, EndpointDispatch, EndpointLayer, Layer } from './pipeline.ts';
import { replayableBody } from './retry/replay-body.ts';
import { retryLayer } from './retry/retry-layer.ts';
import { recordTried } from './retry/tried-layer.ts';
import { routing } from './routing/layer.ts';
import type { MirrorGate } from './routing/mirror.ts';
import { mirroring } from './routing/mirror-layer.ts';
import type { ServiceRuntime } from './service.ts';
import { attemptLayer, telemetryLayer } from './telemetry/request-layer.ts';

export interface StackOptions {
  clock: Clock;
  services: ReadonlyMap<string, ServiceRuntime>;
  mirrorGate: MirrorGate;
  /** Random source for weighted splits, fault and chaos draws (tests pass a seeded one). */
  random?: () => number;
  /** false: leave the telemetry layers out entirely (benchmarks). */
  telemetry: boolean;
  context: ContextRuntime;
}

export function buildStack(opts: StackOptions): Dispatch {
  const random = opts.random ?? Math.random;
  const requestLayers: Layer[] = [
    ...(opts.telemetry ? [telemetryLayer(opts.clock)] : []),
    contextLayer(opts.context),
    routing(opts.services, random),
    replayableBody(),
    mirroring(opts.services, opts.mirrorGate, random),
    faults(random),
    breakerLayer(),
    retryLayer(opts.clock),
  ];
  const endpointLayers: EndpointLayer[] = [
    ...(opts.telemetry ? [attemptLayer()] : []),
    enforceLimits(),
    recordTried(),
    trackLoad(opts.clock),
    detectOutliers(opts.clock),
    chaos(random),
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
