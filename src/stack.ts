/**
 * THE LAYER ORDER. This is the one place where it is written down. Each layer is one file,
 * `<name>-layer.ts`, exporting `<name>Layer()`, in the folder of its concern.
 *
 *   caller (mesh.fetch / mesh.dispatcher / undici.request / mesh.agent, src/http/agent.ts)
 *     │  normalize: service lookup, lowercase headers, Host = original authority   (src/dispatcher.ts)
 *     ▼
 *   ── per-request layers (above the balancer), outermost first ──
 *     sidecar   → (sidecarResponses only) mesh-made failures answered as Envoy would: 504 UT, 503 UO/UH/UF (src/http/sidecar-layer.ts)
 *     telemetry → request span (INTERNAL), request duration metric, request channels (src/telemetry/telemetry-layer.ts)
 *     context   → gateway context + trace headers from AsyncLocalStorage          (src/context/layer.ts)
 *     routing   → match route, pick destination/subset, rewrites, header edits   (src/routing/layer.ts)
 *     ratelimit → the callee's rate limits and quotas, checked before anything is sent (src/ratelimit/ratelimit-layer.ts)
 *     body      → buffer a streamed body up to 64 KiB so it can be replayed      (src/http/body-layer.ts)
 *     mirror    → fire-and-forget copy to the mirror service, bounded            (src/routing/mirror-layer.ts)
 *     propagate → the destination's rule on gateway context: carried, or stripped (src/context/propagate-layer.ts)
 *     fault     → Istio fault injection, decided once, before retries            (src/fault/fault-layer.ts)
 *     breaker   → service-level circuit breaker (opossum), judges final outcomes  (src/breaker/breaker-layer.ts)
 *     retry     → retries, budget, hedging, route timeout, deadline              (src/retry/retry-layer.ts)
 *     ▼
 *   ── balance: pick one endpoint of the subset (P2C peak-EWMA by default)       (src/balancer/balance-layer.ts)
 *     ▼
 *   ── per-endpoint layers (below the balancer), outermost first ──
 *     attempt   → CLIENT span, traceparent and http.client.* metrics per attempt; tracing suppressed below (src/telemetry/attempt-layer.ts)
 *     limits    → connectionPool http2MaxRequests / http1MaxPendingRequests → UO (src/endpoint/limits-layer.ts)
 *     tried     → records the endpoint so a retry prefers another one            (src/endpoint/tried-layer.ts)
 *     load      → in-flight counts (endpoint, service), peak-EWMA RTT sample, counters (src/endpoint/load-layer.ts)
 *     outlier   → consecutive errors / success rate → ejection                    (src/endpoint/outlier-layer.ts)
 *     chaos     → attempt-level chaos (latency/reset/abort), seen by everything above (src/fault/chaos-layer.ts)
 *     gateway   → (services behind another mesh's AUTO_PASSTHROUGH gateway) the SNI outbound_.<port>_.<subset>_.<host> (src/gateway/gateway-layer.ts)
 *     pool      → the endpoint's own undici Pool (TLS in its connector; server name from the final Host;
 *                 HTTP/1.1 or HTTP/2, src/http/protocol.ts) (src/balancer/endpoint.ts); in tests, the
 *                 `transport` Dispatcher instead (src/http/transport.ts)
 *
 * Every layer that judges how an attempt or a request ended (load, outlier, breaker, retry,
 * telemetry) reads it through the one outcome model (src/outcome.ts): `classify(err)` and
 * `OutcomeHandler`'s `onHeaders(status)` / `onDone(outcome)`, each fired once. Layers see a
 * service only through `ServiceView` (src/pipeline.ts).
 *
 * Why the breaker is above retry: it must judge the outcome the caller gets, once per request,
 * however many attempts the retry layer made; below retry, one bad request with three attempts
 * would count three failures and open the circuit three times as fast.
 *
 * Why propagate sits after mirror: the rule judged is the final destination's (routing may
 * switch it), and a mirror copy to a service in another mesh passes it as well.
 *
 * Why gateway is innermost: it only names the TLS server for the pool's connector; every layer
 * above sees the gateway's address as the endpoint, as Istio's clusters list a remote network's
 * gateway as the endpoint of its services.
 *
 * Why rate limits sit right after routing: routing decides which service the request goes to
 * (`destination.host`) and what path it sends, which is what the callee's quota counts; and
 * before body, mirror, fault, breaker and retry, so a refused call sends nothing (no mirror copy,
 * no attempt, no breaker verdict) and a call that is retried counts once, as the callee sees one
 * request. Its 429 is the mesh's own answer, so telemetry (outermost) still records it.
 *
 * Why telemetry is outermost: its span is the *logical* request, so it must wrap everything the
 * caller waits for (routing, fault delays, every retry and backoff). Each attempt gets its own
 * CLIENT span and `traceparent` from the attempt layer, once the balancer has chosen the
 * endpoint, so the upstream's SERVER span is a child of the attempt that reached it (the
 * semantic conventions' model for a client that resends). Routing's choices (route, subset) are
 * read off the request when it ends; retries land on the request span as events. With no
 * OpenTelemetry SDK, no channel subscriber and no admin handler, the layer passes straight through.
 */

import type { Dispatcher } from 'undici';
import { balance } from './balancer/balance-layer.ts';
import { breakerLayer } from './breaker/breaker-layer.ts';
import type { Clock } from './clock.ts';
import { contextLayer } from './context/layer.ts';
import { propagateLayer } from './context/propagate-layer.ts';
import type { ContextRuntime } from './context/runtime.ts';
import { limitsLayer } from './endpoint/limits-layer.ts';
import { loadLayer } from './endpoint/load-layer.ts';
import { outlierLayer } from './endpoint/outlier-layer.ts';
import { triedLayer } from './endpoint/tried-layer.ts';
import { chaosLayer } from './fault/chaos-layer.ts';
import { faultLayer } from './fault/fault-layer.ts';
import { gatewayLayer } from './gateway/gateway-layer.ts';
import { bodyLayer } from './http/body-layer.ts';
import { sidecarLayer } from './http/sidecar-layer.ts';
import { viaTransport } from './http/transport.ts';
import type { Dispatch, EndpointDispatch, EndpointLayer, Layer, ServiceView } from './pipeline.ts';
import { rateLimitLayer } from './ratelimit/ratelimit-layer.ts';
import { retryLayer } from './retry/retry-layer.ts';
import { routingLayer } from './routing/layer.ts';
import type { MirrorGate } from './routing/mirror.ts';
import { mirrorLayer } from './routing/mirror-layer.ts';
import { attemptLayer } from './telemetry/attempt-layer.ts';
import { telemetryLayer } from './telemetry/telemetry-layer.ts';

export interface StackOptions {
  clock: Clock;
  services: ReadonlyMap<string, ServiceView>;
  mirrorGate: MirrorGate;
  /** Random source for weighted splits, fault and chaos draws (tests pass a seeded one). */
  random?: () => number;
  /** false: leave the telemetry layers out entirely (benchmarks). */
  telemetry: boolean;
  /** true: mesh-made failures become HTTP responses, as a sidecar answers (src/http/sidecar-layer.ts). */
  sidecarResponses?: boolean;
  context: ContextRuntime;
  /** Test seam: a Dispatcher that replaces every endpoint's pool (src/http/transport.ts). */
  transport?: Dispatcher | undefined;
}

/** The per-request layers, outermost first. */
export function requestLayers(opts: StackOptions): Layer[] {
  const random = opts.random ?? Math.random;
  return [
    ...(opts.sidecarResponses ? [sidecarLayer()] : []),
    ...(opts.telemetry ? [telemetryLayer(opts.clock)] : []),
    contextLayer(opts.context),
    routingLayer(opts.services, random),
    rateLimitLayer(opts.context),
    bodyLayer(),
    mirrorLayer(opts.services, opts.mirrorGate, random),
    propagateLayer(opts.context),
    faultLayer(random),
    breakerLayer(),
    retryLayer(opts.clock),
  ];
}

/** The per-endpoint layers, outermost first. */
export function endpointLayers(opts: StackOptions): EndpointLayer[] {
  return [
    ...(opts.telemetry ? [attemptLayer()] : []),
    limitsLayer(),
    triedLayer(),
    loadLayer(opts.clock),
    outlierLayer(opts.clock),
    chaosLayer(opts.random ?? Math.random),
    gatewayLayer(),
  ];
}

/** The endpoint's own pool, innermost. */
export const sendToPool: EndpointDispatch = (ep, req, handler) => {
  ep.dispatch(req.opts, handler);
};

/** Composes layers around a bottom dispatch: the first layer is the outermost. */
export function compose(
  layers: readonly Layer[],
  endpoint: readonly EndpointLayer[],
  bottom: EndpointDispatch,
  clock: Clock,
): Dispatch {
  let endpointDispatch = bottom;
  for (let i = endpoint.length - 1; i >= 0; i--)
    endpointDispatch = (endpoint[i] as EndpointLayer)(endpointDispatch);
  let dispatch = balance(endpointDispatch, clock);
  for (let i = layers.length - 1; i >= 0; i--) dispatch = (layers[i] as Layer)(dispatch);
  return dispatch;
}

export function buildStack(opts: StackOptions): Dispatch {
  const bottom = opts.transport ? viaTransport(opts.transport) : sendToPool;
  return compose(requestLayers(opts), endpointLayers(opts), bottom, opts.clock);
}
