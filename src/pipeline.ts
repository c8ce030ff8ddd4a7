/**
 * The types every layer shares. A request layer wraps the dispatch of the layer below it,
 * as undici interceptors do; an endpoint layer does the same below the balancer, with the
 * chosen endpoint in hand. Options are validated when a layer is built, never per request;
 * per-request state lives in the handler a layer wraps around the caller's.
 *
 * Layers see a service only through `ServiceView`: the few per-service objects they read.
 */
import type { Duplex } from 'node:stream';
import type { Attributes, Span } from '@opentelemetry/api';
import type { Dispatcher } from 'undici';
import type { Endpoint } from './balancer/endpoint.ts';
import type { EndpointSet } from './balancer/endpoint-set.ts';
import type { Fallback, ServiceBreaker } from './breaker/breaker.ts';
import type { ServiceLimits } from './endpoint/limits.ts';
import type { OutlierDetector } from './endpoint/outlier.ts';
import type { ServiceGateway } from './gateway/service-gateway.ts';
import type { CallOverrides } from './http/call-options.ts';
import type { MeshDispatchOptions } from './http/dispatch-options.ts';
import type { Limiter } from './ratelimit/limiter.ts';
import type { RetryPolicy, ServiceRetry } from './retry/policy.ts';
import type { RouteDecision, Router } from './routing/router.ts';
import type { ServiceStats } from './telemetry/stats.ts';
import type { ClientTls } from './tls/client.ts';

export type DispatchHandler = Dispatcher.DispatchHandler;
export type DispatchController = Dispatcher.DispatchController;
/** Response headers and trailers as undici hands them to handlers. */
export type ResponseHeaders = Parameters<NonNullable<DispatchHandler['onResponseStart']>>[2];
export type UpgradeSocket = Duplex;

export type { Clock } from './clock.ts';
export type { MeshDispatchOptions } from './http/dispatch-options.ts';

/** A retry as the service's telemetry records it. */
export interface RetryEvent {
  req?: MeshRequest | undefined;
  attempt: number;
  reason: string;
  delayMs?: number;
  endpoint?: string | undefined;
}

/** The per-service telemetry calls the layers make. */
export interface ServiceEvents {
  retry(e: RetryEvent): void;
  retryBudgetExhausted(e: { req?: MeshRequest | undefined; attempt: number; reason: string }): void;
  activeAttrs(authority: string): Attributes;
  durationAttrs(
    authority: string,
    method: string,
    status: number,
    errorType: string | undefined,
    protocolVersion?: string,
  ): Attributes;
  /** The admin page's rolling minute of this service (fed only once an admin handler exists). */
  readonly stats: ServiceStats;
}

/**
 * What the layers may read of a service: nothing else. `ServiceRuntime` (src/service.ts)
 * implements it; tests build small fakes of it.
 */
export interface ServiceView {
  readonly name: string;
  /** Endpoints by subset, readiness, and the first wait for discovery. */
  readonly endpoints: EndpointSet;
  /** How long the first request waits for discovery's first resolution. */
  readonly initialTimeoutMs: number;
  /** The compiled `http` routes (size 0 when the service has none). */
  readonly router: Router;
  /** Retry policy per route, retry budget and hedge budget. */
  readonly retry: ServiceRetry;
  /** Outlier detection; undefined when disabled. */
  readonly outlier: OutlierDetector | undefined;
  /** Service-level circuit breaker; undefined unless configured. */
  readonly breaker: ServiceBreaker | undefined;
  /** Answer given while the breaker is open; undefined = fail with MESHWORK_ERR_CIRCUIT_OPEN. */
  readonly fallback: Fallback | undefined;
  /** connectionPool request accounting. */
  readonly limits: ServiceLimits;
  /** Client TLS; undefined when the service has none (an https:// request to it is refused). */
  readonly tls: ClientTls | undefined;
  readonly telemetry: ServiceEvents;
  /** Outbound rate limits (`rateLimits` of the service); undefined when it has none. */
  readonly rateLimits?: Limiter | undefined;
  /** The other mesh's gateway the service is reached through (`gateway`); undefined for most. */
  readonly gateway?: ServiceGateway | undefined;
  /**
   * The gateway context headers this service may receive (`context.propagate`); undefined = all
   * of them (a service of this mesh, by default).
   */
  readonly contextAllowed?: ReadonlySet<string> | undefined;
}

/** What the telemetry layer records of one request, reachable by the layers below. */
export interface RequestObserver {
  readonly span: Span | undefined;
  /** Routing names the route that matched. */
  noteRoute(name: string | undefined): void;
  /** The next attempt is a retry for this reason. */
  noteRetry(reason: string): void;
  /**
   * Every attempt, with the endpoint the balancer chose: the observer sends it on with `next`
   * (wrapping the handler and the context to trace and measure it).
   */
  attempt(ep: Endpoint, req: MeshRequest, handler: DispatchHandler, next: EndpointDispatch): void;
}

/** One logical request as it travels down the stack. */
export interface MeshRequest {
  /** The destination service; routing may switch it (`destination.host`). */
  service: ServiceView;
  /** What will be sent to the endpoint's pool (path, method, headers incl. host, body...). */
  opts: MeshDispatchOptions;
  /** The authority the caller addressed (`travels`, `travels:8080`). */
  readonly authority: string;
  /** The route and destination routing chose; undefined when the service has no routes. */
  route: RouteDecision | undefined;
  /** The matched route's retries/timeout (set by routing); undefined = the service's policy. */
  retryPolicy: RetryPolicy | undefined;
  /** DestinationRule subset chosen by routing; undefined = all endpoints. */
  subset: string | undefined;
  /** `destination.port.number` chosen by routing: only endpoints on this port; undefined = any. */
  port: number | undefined;
  /**
   * Consistent-hash key, derived once per request (not per attempt) when the pick group hashes;
   * null = the request has no value for the key (picked at random, as Envoy does).
   */
  hashKey: string | null | undefined;
  /** A generated hash cookie to set on the response (`httpCookie` when the cookie was missing). */
  hashCookie: string | undefined;
  /** The endpoint this attempt went to (set below the balancer, by the tried layer). */
  endpoint: Endpoint | undefined;
  /** Endpoints this request already tried; the balancer avoids them. */
  tried: Set<Endpoint> | undefined;
  /** 0 for the first attempt. */
  attempt: number;
  /** Monotonic ms when the request entered the mesh. */
  readonly startedAt: number;
  /**
   * The services of the configuration the request started on (live updates swap the mesh's;
   * a request keeps its own to its end). Routing and mirroring look destinations up here;
   * undefined = the map the layer was built with.
   */
  readonly services: ReadonlyMap<string, ServiceView> | undefined;
  /** The caller's per-call overrides (timeout, retries, subset); undefined for most requests. */
  readonly call: CallOverrides | undefined;
  /**
   * Set by the telemetry layer when anything observes this request (an OpenTelemetry SDK or a
   * diagnostics_channel subscriber); undefined otherwise.
   */
  telemetry: RequestObserver | undefined;
}

/**
 * A new request, every field present from the start and always in this order: layers set
 * fields later, and objects that keep one shape keep the hot path monomorphic.
 */
export function newMeshRequest(
  service: ServiceView,
  opts: MeshDispatchOptions,
  authority: string,
  startedAt: number,
  fields?: {
    retryPolicy?: RetryPolicy;
    subset?: string | undefined;
    port?: number | undefined;
    services?: ReadonlyMap<string, ServiceView> | undefined;
    call?: CallOverrides | undefined;
  },
): MeshRequest {
  return {
    service,
    opts,
    authority,
    route: undefined,
    retryPolicy: fields?.retryPolicy,
    subset: fields?.subset,
    port: fields?.port,
    hashKey: undefined,
    hashCookie: undefined,
    endpoint: undefined,
    tried: undefined,
    attempt: 0,
    startedAt,
    services: fields?.services,
    call: fields?.call,
    telemetry: undefined,
  };
}

export type Dispatch = (req: MeshRequest, handler: DispatchHandler) => void;
export type Layer = (next: Dispatch) => Dispatch;

export type EndpointDispatch = (ep: Endpoint, req: MeshRequest, handler: DispatchHandler) => void;
export type EndpointLayer = (next: EndpointDispatch) => EndpointDispatch;

/**
 * A controller that controls nothing (stateless, shared): for errors the mesh raises itself,
 * before or instead of any connection (no endpoints, circuit open, overflow, injected reset).
 */
export const deadController: DispatchController = {
  abort() {},
  pause() {},
  resume() {},
  paused: false,
  aborted: false,
  reason: null,
};

/**
 * THE way to fail a request that has no connection: the handler gets `onRequestStart` (as undici
 * always calls it first) and then the error. Used for every early failure (closed mesh, unknown
 * service, no endpoints, overflow, open circuit, body errors, injected resets).
 */
export function failRequest(handler: DispatchHandler, err: Error): void {
  handler.onRequestStart?.(deadController, {});
  handler.onResponseError?.(deadController, err);
}
