/**
 * The telemetry request layer (outermost, see src/stack.ts) and the attempt layer (outermost
 * below the balancer). Per logical request, when anything observes it, it:
 *   - opens one CLIENT span and makes it the active span for the layers below (so the context
 *     layer injects *its* trace context, and retries/ejections land on it as events);
 *   - counts `http.client.active_requests` and records `http.client.request.duration`;
 *   - publishes `meshwork:request:start`, then `:end` or `:error`.
 * When no OpenTelemetry provider is registered and nobody subscribes to a request channel,
 * it calls the next layer directly: a global property read and three `hasSubscribers` reads.
 */
import { type Attributes, context, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Endpoint } from '../balancer/endpoint.ts';
import type { Clock } from '../clock.ts';
import { type Outcome, OutcomeHandler } from '../outcome.ts';
import type { DispatchHandler, Layer, MeshRequest, RequestObserver } from '../pipeline.ts';
import {
  type RequestMessage,
  requestChannelsActive,
  requestEndChannel,
  requestErrorChannel,
  requestStartChannel,
} from './channels.ts';
import { type Instruments, instruments } from './metrics.ts';
import { activeTracer, errorType, normalizeMethod, otelRegistered, splitAuthority } from './tracing.ts';
import { fullUrl } from './url.ts';

let nextRequestId = 1;

export function telemetryLayer(clock: Clock): Layer {
  return (next) => (req, handler) => {
    const otel = otelRegistered();
    if (!otel && !requestChannelsActive()) {
      next(req, handler);
      return;
    }
    const t = new RequestTelemetry(req, handler, clock, otel);
    req.telemetry = t;
    const span = t.span;
    if (span?.isRecording()) context.with(trace.setSpan(context.active(), span), next, undefined, req, t);
    else next(req, t);
  };
}

/**
 * The per-request telemetry state, also the handler wrapped around the caller's. Layers reach
 * it as `req.telemetry` (undefined when nothing observes the request): the routing layer calls
 * `noteRoute(name)`, the retry layer goes through `req.service.telemetry.retry({ req, ... })`.
 */
export class RequestTelemetry extends OutcomeHandler implements RequestObserver {
  readonly span: Span | undefined;
  readonly #req: MeshRequest;
  readonly #clock: Clock;
  readonly #inst: Instruments | undefined;
  readonly #method: string;
  #msg: RequestMessage | undefined;
  #attempts = 0;
  #endpoint: Endpoint | undefined;
  #route: string | undefined;
  #pendingReason: string | undefined;

  constructor(req: MeshRequest, handler: DispatchHandler, clock: Clock, otel: boolean) {
    super(handler);
    this.#req = req;
    this.#clock = clock;
    const rawMethod = req.opts.method ?? 'GET';
    const method = normalizeMethod(rawMethod);
    this.#method = method;
    const svc = req.service;
    const tracer = otel ? activeTracer() : undefined;
    if (tracer) {
      const span = tracer.startSpan(method, { kind: SpanKind.CLIENT }, context.active());
      if (span.isRecording()) {
        const scheme = schemeOf(req.opts.origin);
        const { port } = splitAuthority(req.authority, scheme);
        const attrs: Attributes = {
          'http.request.method': method,
          'url.full': fullUrl(scheme, req.authority, req.opts.path),
          'server.address': svc.name,
          'server.port': port,
          'meshwork.service': svc.name,
        };
        if (method === '_OTHER') attrs['http.request.method_original'] = rawMethod;
        span.setAttributes(attrs);
      }
      this.span = span;
    }
    if (otel) {
      this.#inst = instruments();
      this.#inst.clientActive.add(1, svc.telemetry.activeAttrs(req.authority));
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

  /** Called by the attempt layer for every attempt, with the endpoint the balancer chose. */
  noteAttempt(ep: Endpoint, attempt: number): void {
    this.#attempts++;
    this.#endpoint = ep;
    const span = this.span;
    if (span?.isRecording()) {
      const attrs: Attributes = { 'meshwork.attempt': attempt, 'meshwork.endpoint': ep.address };
      if (this.#pendingReason !== undefined && attempt > 0)
        attrs['meshwork.retry.reason'] = this.#pendingReason;
      span.addEvent('meshwork.attempt', attrs);
    }
    this.#pendingReason = undefined;
  }

  protected override onDone(o: Outcome): void {
    const err = o.cause;
    const req = this.#req;
    const status = o.status;
    const errType = err !== undefined ? errorType(err) : status >= 400 ? String(status) : undefined;
    const ep = this.#endpoint;
    const span = this.span;
    if (span?.isRecording()) {
      const attrs: Attributes = {};
      if (status > 0) attrs['http.response.status_code'] = status;
      if (errType !== undefined) attrs['error.type'] = errType;
      if (this.#attempts > 1) attrs['http.request.resend_count'] = this.#attempts - 1;
      if (req.subset !== undefined) attrs['meshwork.subset'] = req.subset;
      if (this.#route !== undefined) attrs['meshwork.route'] = this.#route;
      if (ep !== undefined) {
        attrs['meshwork.endpoint'] = ep.address;
        attrs['network.peer.address'] = ep.host;
        attrs['network.peer.port'] = ep.port;
      }
      span.setAttributes(attrs);
      if (errType !== undefined) {
        span.setStatus(
          err ? { code: SpanStatusCode.ERROR, message: err.message } : { code: SpanStatusCode.ERROR },
        );
        if (err) span.recordException(err);
      }
    }
    span?.end();
    const inst = this.#inst;
    const durationMs = this.#clock() - req.startedAt;
    if (inst !== undefined) {
      const svc = req.service.telemetry;
      inst.clientActive.add(-1, svc.activeAttrs(req.authority));
      inst.clientDuration.record(
        durationMs / 1000,
        svc.durationAttrs(req.authority, this.#method, status, errType),
      );
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

function schemeOf(origin: unknown): string {
  if (typeof origin === 'string') return origin.startsWith('https:') ? 'https' : 'http';
  if (origin instanceof URL) return origin.protocol === 'https:' ? 'https' : 'http';
  return 'http';
}
