/**
 * The types every layer shares. A request layer wraps the dispatch of the layer below it,
 * as undici interceptors do; an endpoint layer does the same below the balancer, with the
 * chosen endpoint in hand. Options are validated when a layer is built, never per request;
 * per-request state lives in the handler a layer wraps around the caller's.
 */
import type { Dispatcher } from 'undici';
import type { Endpoint } from './balancer/endpoint.ts';
import type { HeaderRecord } from './http/headers.ts';
import type { RetryPolicy } from './retry/policy.ts';
import type { RouteDecision } from './routing/router.ts';
import type { ServiceRuntime } from './service.ts';
import type { RequestTelemetry } from './telemetry/request-layer.ts';

export type DispatchHandler = Dispatcher.DispatchHandler;
export type DispatchController = Dispatcher.DispatchController;

/** undici dispatch options, with headers normalized to a lowercase record. */
export type MeshDispatchOptions = Omit<Dispatcher.DispatchOptions, 'headers'> & {
  headers: HeaderRecord;
  /**
   * The TLS server name for undici (an option its Request reads, missing from its types): set by
   * the endpoint from the final Host header (src/http/server-name.ts) unless the caller gave one.
   */
  servername?: string | undefined;
};

/** One logical request as it travels down the stack. */
export interface MeshRequest {
  /** The destination service; routing may switch it (`destination.host`). */
  service: ServiceRuntime;
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
  /**
   * Consistent-hash key, derived once per request (not per attempt) when the pick group hashes;
   * null = the request has no value for the key (picked at random, as Envoy does).
   */
  hashKey: string | null | undefined;
  /** A generated hash cookie to set on the response (`httpCookie` when the cookie was missing). */
  hashCookie: string | undefined;
  /** The endpoint this attempt went to (set below the balancer, by src/retry/tried-layer.ts). */
  endpoint: Endpoint | undefined;
  /** Endpoints this request already tried; the balancer avoids them. */
  tried: Set<Endpoint> | undefined;
  /** 0 for the first attempt. */
  attempt: number;
  /** Monotonic ms when the request entered the mesh. */
  readonly startedAt: number;
  /**
   * Set by the telemetry layer when anything observes this request (an OpenTelemetry SDK or a
   * diagnostics_channel subscriber); undefined otherwise. See src/telemetry/request-layer.ts.
   */
  telemetry: RequestTelemetry | undefined;
}

/**
 * A new request, every field present from the start and always in this order: layers set
 * fields later, and objects that keep one shape keep the hot path monomorphic.
 */
export function newMeshRequest(
  service: MeshRequest['service'],
  opts: MeshRequest['opts'],
  authority: string,
  startedAt: number,
  fields?: { retryPolicy?: RetryPolicy; subset?: string | undefined },
): MeshRequest {
  return {
    service,
    opts,
    authority,
    route: undefined,
    retryPolicy: fields?.retryPolicy,
    subset: fields?.subset,
    hashKey: undefined,
    hashCookie: undefined,
    endpoint: undefined,
    tried: undefined,
    attempt: 0,
    startedAt,
    telemetry: undefined,
  };
}

export type Dispatch = (req: MeshRequest, handler: DispatchHandler) => void;
export type Layer = (next: Dispatch) => Dispatch;

export type EndpointDispatch = (ep: Endpoint, req: MeshRequest, handler: DispatchHandler) => void;
export type EndpointLayer = (next: EndpointDispatch) => EndpointDispatch;

/**
 * A controller that controls nothing (stateless, shared): for answers and errors the mesh raises
 * itself, before or instead of any connection (no endpoints, circuit open, injected chaos).
 */
export const deadController: DispatchController = {
  abort() {},
  pause() {},
  resume() {},
  paused: false,
  aborted: false,
  reason: null,
};

/** Delivers an error to a handler that has no connection yet. */
export function failRequest(handler: DispatchHandler, err: Error): void {
  handler.onResponseError?.(deadController, err);
}
