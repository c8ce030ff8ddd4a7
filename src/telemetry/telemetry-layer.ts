/**
 * The telemetry request layer (outermost, see src/stack.ts) and, through `attempt()`, the attempt
 * layer (outermost below the balancer). Per logical request, when anything observes it, it:
 *   - opens the request's INTERNAL span (`GET travels`: routing, fault delays, every attempt and
 *     backoff) as a child of the caller's active span, and one CLIENT span per attempt under it
 *     (`GET`, with `http.request.resend_count` on resends), as the HTTP semantic conventions ask
 *     of a client that resends; each attempt carries its own `traceparent`, so the upstream's
 *     SERVER span is a child of the attempt that reached it;
 *   - sends each attempt with tracing suppressed below it, so an undici instrumentation
 *     (@opentelemetry/instrumentation-undici) neither makes a second span of the attempt nor adds
 *     a second `traceparent` header;
 *   - records `meshwork.request.duration` per logical request, and per attempt
 *     `http.client.active_requests` and `http.client.request.duration` (the latter unless an
 *     undici instrumentation records it already: it sees every attempt too);
 *   - delivers the caller's handler callbacks in the caller's OpenTelemetry context (a pooled
 *     connection's callbacks otherwise run in the context of whichever request opened it);
 *   - publishes `meshwork:request:start`, then `:end` or `:error`;
 *   - feeds the admin page's rolling minute (stats.ts) once an admin handler exists.
 * When no OpenTelemetry provider is registered, nobody subscribes to a request channel and no
 * admin handler exists, it calls the next layer directly: two global property reads, three
 * `hasSubscribers` reads and a module variable.
 */
import dc from 'node:diagnostics_channel';
import {
  type Attributes,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { Endpoint } from '../balancer/endpoint.ts';
import type { Clock } from '../clock.ts';
import type { HeaderRecord } from '../http/headers.ts';
import { type Outcome, OutcomeHandler } from '../outcome.ts';
import type {
  DispatchController,
  DispatchHandler,
  EndpointDispatch,
  Layer,
  MeshRequest,
  RequestObserver,
  ResponseHeaders,
  ServiceView,
  UpgradeSocket,
} from '../pipeline.ts';
import {
  type RequestMessage,
  requestChannelsActive,
  requestEndChannel,
  requestErrorChannel,
  requestStartChannel,
} from './channels.ts';
import { type Instruments, instruments } from './metrics.ts';
import { otelHas } from './otel-global.ts';
import { statsEnabled } from './stats.ts';
import {
  activeTracer,
  errorType,
  normalizeMethod,
  otelRegistered,
  splitAuthority,
  suppressTracing,
} from './tracing.ts';
import { fullUrl } from './url.ts';

let nextRequestId = 1;

/**
 * undici's per-request channel. An undici instrumentation subscribes to it (OpenTelemetry's
 * instrumentation-undici, and the APM agents built on it) and then records
 * `http.client.request.duration` for every request undici creates, the mesh's attempts among
 * them (it cannot be told which are): the mesh then leaves that metric to it, so each attempt
 * is counted once.
 */
const undiciRequestCreate = dc.channel('undici:request:create');

export function telemetryLayer(clock: Clock): Layer {
  return (next) => (req, handler) => {
    const otel = otelRegistered();
    if (!otel && !requestChannelsActive() && !statsEnabled()) {
      next(req, handler);
      return;
    }
    const t = new RequestTelemetry(req, handler, clock, otel);
    req.telemetry = t;
    const ctx = t.spanContext;
    if (ctx !== undefined) context.with(ctx, next, undefined, req, t);
    else next(req, t);
  };
}

const headerSetter = {
  set(carrier: HeaderRecord, key: string, value: string): void {
    carrier[key.toLowerCase()] = value;
  },
};

/**
 * The per-request telemetry state, also the handler wrapped around the caller's. Layers reach
 * it as `req.telemetry` (undefined when nothing observes the request): the routing layer calls
 * `noteRoute(name)`, the retry layer goes through `req.service.telemetry.retry({ req, ... })`,
 * the attempt layer hands it every attempt.
 */
export class RequestTelemetry extends OutcomeHandler implements RequestObserver {
  /** The request's INTERNAL span; undefined without a tracer provider. */
  readonly span: Span | undefined;
  /** The caller's context with `span` in it: every attempt's parent, active for the layers below. */
  readonly spanContext: Context | undefined;
  readonly tracer: Tracer | undefined;
  readonly inst: Instruments | undefined;
  /** Feeding the admin page's windows. */
  readonly stats: boolean;
  /** The caller set `traceparent` itself: a header the caller set explicitly wins. */
  readonly callerTrace: boolean;
  readonly method: string;
  readonly rawMethod: string;
  readonly scheme: string;
  /** `url.full` as the caller addressed it (the attempt spans reuse it when nothing rewrote it). */
  readonly url: string | undefined;
  /** The caller's OpenTelemetry context; undefined without an SDK. */
  readonly #callerCtx: Context | undefined;
  readonly #req: MeshRequest;
  /** The service the caller addressed (routing may send the request to another one). */
  readonly #service: ServiceView;
  readonly #clock: Clock;
  /** The path the caller sent (routing may rewrite it). */
  #path: string | undefined;
  #msg: RequestMessage | undefined;
  #attempts = 0;
  #endpoint: Endpoint | undefined;
  #route: string | undefined;
  #pendingReason: string | undefined;

  constructor(req: MeshRequest, handler: DispatchHandler, clock: Clock, otel: boolean) {
    super(handler);
    this.#req = req;
    this.#clock = clock;
    this.#service = req.service;
    const rawMethod = req.opts.method ?? 'GET';
    const method = normalizeMethod(rawMethod);
    this.method = method;
    this.rawMethod = rawMethod;
    this.scheme = schemeOf(req.opts.origin);
    this.callerTrace = req.opts.headers.traceparent !== undefined;
    this.stats = statsEnabled();
    const svc = req.service;
    const tracer = otel ? activeTracer() : undefined;
    this.tracer = tracer;
    if (otel) {
      const caller = context.active();
      this.#callerCtx = caller;
      this.inst = instruments();
      if (tracer !== undefined) {
        const { port } = splitAuthority(req.authority, this.scheme);
        this.url = fullUrl(this.scheme, req.authority, req.opts.path);
        this.#path = req.opts.path;
        const attributes: Attributes = {
          'http.request.method': method,
          'url.full': this.url,
          'server.address': svc.name,
          'server.port': port,
          'meshwork.service': svc.name,
        };
        if (method === '_OTHER') attributes['http.request.method_original'] = rawMethod;
        const span = tracer.startSpan(
          `${method === '_OTHER' ? 'HTTP' : method} ${svc.name}`,
          { kind: SpanKind.INTERNAL, attributes },
          caller,
        );
        this.span = span;
        this.spanContext = trace.setSpan(caller, span);
      }
    }
    if (requestChannelsActive()) {
      this.#msg = {
        id: nextRequestId++,
        service: svc.name,
        authority: req.authority,
        method: rawMethod,
        path: req.opts.path ?? '/',
        startTime: req.startedAt,
      };
      if (requestStartChannel.hasSubscribers) requestStartChannel.publish(this.#msg);
    }
  }

  /** Routing names the route that matched. */
  noteRoute(name: string | undefined): void {
    this.#route = name;
  }

  /** Called through ServiceTelemetry.retry: the next attempt is a retry for this reason. */
  noteRetry(reason: string): void {
    this.#pendingReason = reason;
  }

  /** `url.full` of an attempt: the caller's unless routing rewrote the Host or the path. */
  urlOf(host: string, path: string | undefined): string {
    const url = this.url;
    return url !== undefined && host === this.#req.authority && path === this.#path
      ? url
      : fullUrl(this.scheme, host, path);
  }

  /** Called by the attempt layer for every attempt, with the endpoint the balancer chose. */
  attempt(ep: Endpoint, req: MeshRequest, handler: DispatchHandler, next: EndpointDispatch): void {
    this.#attempts++;
    this.#endpoint = ep;
    const reason = this.#pendingReason;
    this.#pendingReason = undefined;
    if (this.inst === undefined && !this.stats) {
      // Only channel subscribers: they read the count and the endpoint at the end.
      next(ep, req, handler);
      return;
    }
    const a = new AttemptTelemetry(this, ep, req, handler, reason, this.#clock);
    // Explicitly this request's context: a retry may be launched from a pooled connection's
    // callback, whose context is that of whichever request opened the connection.
    const ctx = a.context ?? this.spanContext ?? this.#callerCtx;
    if (ctx !== undefined && otelHas('propagation'))
      context.with(suppressTracing(ctx), next, undefined, ep, req, a);
    else if (ctx !== undefined) context.with(ctx, next, undefined, ep, req, a);
    else next(ep, req, a);
  }

  // The caller's callbacks, in the caller's context.

  override onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    socket: UpgradeSocket,
  ): void {
    const ctx = this.#callerCtx;
    if (ctx === undefined || context.active() === ctx)
      super.onRequestUpgrade(controller, statusCode, headers, socket);
    else context.with(ctx, super.onRequestUpgrade, this, controller, statusCode, headers, socket);
  }

  override onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): void {
    const ctx = this.#callerCtx;
    if (ctx === undefined || context.active() === ctx)
      super.onResponseStart(controller, statusCode, headers, statusMessage);
    else context.with(ctx, super.onResponseStart, this, controller, statusCode, headers, statusMessage);
  }

  override onResponseData(controller: DispatchController, chunk: Buffer): void {
    const ctx = this.#callerCtx;
    if (ctx === undefined || context.active() === ctx) super.onResponseData(controller, chunk);
    else context.with(ctx, super.onResponseData, this, controller, chunk);
  }

  override onResponseEnd(controller: DispatchController, trailers: ResponseHeaders): void {
    const ctx = this.#callerCtx;
    if (ctx === undefined || context.active() === ctx) super.onResponseEnd(controller, trailers);
    else context.with(ctx, super.onResponseEnd, this, controller, trailers);
  }

  override onResponseError(controller: DispatchController, err: Error): void {
    const ctx = this.#callerCtx;
    if (ctx === undefined || context.active() === ctx) super.onResponseError(controller, err);
    else context.with(ctx, super.onResponseError, this, controller, err);
  }

  protected override onDone(o: Outcome): void {
    const err = o.cause;
    const req = this.#req;
    const status = o.status;
    const errType = err !== undefined ? errorType(err) : status >= 400 ? String(status) : undefined;
    const ep = this.#endpoint;
    const span = this.span;
    if (span?.isRecording()) {
      const attrs: Attributes = { 'meshwork.attempts': this.#attempts };
      if (status > 0) attrs['http.response.status_code'] = status;
      if (errType !== undefined) attrs['error.type'] = errType;
      if (req.subset !== undefined) attrs['meshwork.subset'] = req.subset;
      if (this.#route !== undefined) attrs['meshwork.route'] = this.#route;
      if (req.service !== this.#service) attrs['meshwork.destination.service'] = req.service.name;
      if (ep !== undefined) attrs['meshwork.endpoint'] = ep.address;
      span.setAttributes(attrs);
      if (errType !== undefined) {
        span.setStatus(
          err ? { code: SpanStatusCode.ERROR, message: err.message } : { code: SpanStatusCode.ERROR },
        );
        if (err) span.recordException(err);
      }
    }
    span?.end();
    const durationMs = this.#clock() - req.startedAt;
    const svc = this.#service.telemetry;
    const inst = this.inst;
    if (inst !== undefined)
      inst.requestDuration.record(
        durationMs / 1000,
        svc.durationAttrs(req.authority, this.method, status, errType),
      );
    if (this.stats) {
      const failed = status >= 500 || (o.error !== undefined && o.error !== 'cancelled');
      const d = req.route;
      // Routes are the addressed service's: the observed split of each is counted there.
      const destinations = d?.route.config.route;
      if (d !== undefined && destinations !== undefined && destinations.length > 1)
        svc.stats.request(
          this.#clock(),
          durationMs,
          failed,
          d.route,
          destinations.indexOf(d.destination as (typeof destinations)[number]),
        );
      else svc.stats.request(this.#clock(), durationMs, failed);
    }
    const msg = this.#msg;
    if (msg !== undefined) {
      msg.statusCode = status > 0 ? status : undefined;
      msg.durationMs = durationMs;
      msg.attempts = this.#attempts;
      msg.endpoint = ep?.address;
      msg.subset = req.subset;
      msg.route = this.#route;
      if (err !== undefined) {
        msg.error = err;
        msg.errorType = errType;
        if (requestErrorChannel.hasSubscribers) requestErrorChannel.publish(msg);
      } else if (requestEndChannel.hasSubscribers) requestEndChannel.publish(msg);
    }
  }
}

/**
 * One attempt: its CLIENT span (child of the request's span) and `traceparent`, its
 * `http.client.*` metrics and its line in the admin page's endpoint window.
 */
class AttemptTelemetry extends OutcomeHandler {
  /** The request's context with this attempt's span; undefined without a tracer. */
  readonly context: Context | undefined;
  readonly #parent: RequestTelemetry;
  readonly #ep: Endpoint;
  readonly #service: ServiceView;
  readonly #authority: string;
  readonly #span: Span | undefined;
  readonly #clock: Clock;
  readonly #start: number;

  constructor(
    parent: RequestTelemetry,
    ep: Endpoint,
    req: MeshRequest,
    handler: DispatchHandler,
    retryReason: string | undefined,
    clock: Clock,
  ) {
    super(handler);
    this.#parent = parent;
    this.#ep = ep;
    this.#service = req.service;
    this.#authority = req.authority;
    this.#clock = clock;
    this.#start = clock();
    const parentCtx = parent.spanContext;
    const tracer = parent.tracer;
    if (parentCtx !== undefined && tracer !== undefined) {
      const method = parent.method;
      const host = typeof req.opts.headers.host === 'string' ? req.opts.headers.host : req.authority;
      const { port } = splitAuthority(req.authority, parent.scheme);
      const attributes: Attributes = {
        'http.request.method': method,
        'url.full': parent.urlOf(host, req.opts.path),
        'server.address': req.service.name,
        'server.port': port,
        'network.peer.address': ep.host,
        'network.peer.port': ep.port,
        'network.protocol.version': ep.httpVersion,
        'meshwork.service': req.service.name,
        'meshwork.endpoint': ep.address,
      };
      if (method === '_OTHER') attributes['http.request.method_original'] = parent.rawMethod;
      if (req.attempt > 0) {
        attributes['http.request.resend_count'] = req.attempt;
        if (retryReason !== undefined) attributes['meshwork.retry.reason'] = retryReason;
      }
      const span = tracer.startSpan(
        method === '_OTHER' ? 'HTTP' : method,
        { kind: SpanKind.CLIENT, attributes },
        parentCtx,
      );
      this.#span = span;
      const ctx = trace.setSpan(parentCtx, span);
      this.context = ctx;
      // This attempt's trace context on the wire (unless the caller set `traceparent` itself).
      // Attempts share the request's headers object (a hedge runs beside the first attempt, and
      // undici may read the headers later when the pool queues it): this one gets its own copy.
      if (!parent.callerTrace && otelHas('propagation')) {
        const headers = { ...req.opts.headers };
        propagation.inject(ctx, headers, headerSetter);
        req.opts = { ...req.opts, headers };
      }
    }
    parent.inst?.clientActive.add(1, req.service.telemetry.activeAttrs(req.authority));
  }

  protected override onDone(o: Outcome): void {
    const status = o.status;
    const err = o.cause;
    // An attempt the mesh or the caller ended on purpose is not an error (semantic conventions,
    // as instrumentation-undici does), unless an answer it had says so: a losing hedge, an
    // abort, no; a 503 the retry layer discarded to retry, yes ('503').
    const cancelled = o.error === 'cancelled';
    const dropped = cancelled && status === 0;
    const errType =
      err !== undefined && !cancelled ? errorType(err) : status >= 400 ? String(status) : undefined;
    const version = this.#ep.httpVersion;
    const span = this.#span;
    if (span?.isRecording()) {
      if (status > 0) span.setAttribute('http.response.status_code', status);
      if (dropped) span.setAttribute('meshwork.attempt.cancelled', true);
      if (errType !== undefined) {
        span.setAttribute('error.type', errType);
        if (err !== undefined && !cancelled) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
          span.recordException(err);
        } else span.setStatus({ code: SpanStatusCode.ERROR });
      }
    }
    span?.end();
    const now = this.#clock();
    const ms = now - this.#start;
    const svc = this.#service.telemetry;
    const inst = this.#parent.inst;
    if (inst !== undefined) {
      inst.clientActive.add(-1, svc.activeAttrs(this.#authority));
      if (!undiciRequestCreate.hasSubscribers)
        inst.clientDuration.record(
          ms / 1000,
          svc.durationAttrs(this.#authority, this.#parent.method, status, errType, version),
        );
    }
    if (this.#parent.stats && !dropped)
      svc.stats.attempt(this.#ep, now, ms, status >= 500 || (o.error !== undefined && !cancelled));
  }
}

function schemeOf(origin: unknown): string {
  if (typeof origin === 'string') return origin.startsWith('https:') ? 'https' : 'http';
  if (origin instanceof URL) return origin.protocol === 'https:' ? 'https' : 'http';
  return 'http';
}
