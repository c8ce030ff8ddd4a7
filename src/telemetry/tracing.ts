/**
 * Spans through @opentelemetry/api only: without a registered SDK nothing is created.
 * `otelRegistered()` is the request path's cheap check (one global property read);
 * `activeTracer()` hands out meshwork's tracer, cached per tracer provider.
 *
 * The spans of a logical request (one INTERNAL span, one CLIENT span per attempt) are opened by
 * the telemetry layers (telemetry-layer.ts). The inbound side (mesh.inbound()) uses
 * `startServerSpan` / `endServerSpan` below.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type Attributes,
  type Context,
  context,
  createContextKey,
  isSpanContextValid,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { instruments, METER_NAME, METER_VERSION } from './metrics.ts';
import { otelHas } from './otel-global.ts';
import { redactPath } from './url.ts';

/**
 * True when an OpenTelemetry tracer or meter provider is registered globally; when this is
 * false, spans and metrics are no-ops and the request layer steps aside.
 */
export function otelRegistered(): boolean {
  return otelHas('trace') || otelHas('metrics');
}

/**
 * The SDK's "suppress tracing" context key (`suppressTracing()` of @opentelemetry/core, the one
 * its exporters use so their own HTTP calls are not traced). `createContextKey` is
 * `Symbol.for(description)`, so this is the SDK's key itself, without depending on the SDK.
 * Under it the SDK's tracer hands out non-recording spans with an invalid context, and the W3C,
 * B3, Jaeger and baggage propagators inject nothing.
 */
const SUPPRESS_TRACING_KEY = createContextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING');

/** `ctx` with tracing suppressed (see SUPPRESS_TRACING_KEY). */
export function suppressTracing(ctx: Context): Context {
  return ctx.setValue(SUPPRESS_TRACING_KEY, true);
}

/** True when a tracer provider (not just a meter provider) is registered. */
function tracingRegistered(): boolean {
  return otelHas('trace');
}

let cachedDelegate: unknown;
let cachedTracer: Tracer | undefined;

/** meshwork's tracer, or undefined when no tracer provider is registered. */
export function activeTracer(): Tracer | undefined {
  if (!tracingRegistered()) return undefined;
  const tp = trace.getTracerProvider() as TracerProvider & { getDelegate?: () => TracerProvider };
  const delegate = typeof tp.getDelegate === 'function' ? tp.getDelegate() : tp;
  if (delegate !== cachedDelegate || cachedTracer === undefined) {
    cachedDelegate = delegate;
    cachedTracer = tp.getTracer(METER_NAME, METER_VERSION);
  }
  return cachedTracer;
}

const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
  'QUERY',
]);

/** `http.request.method`: a known method (upper case) or `_OTHER` (semantic conventions). */
export function normalizeMethod(method: string | undefined): string {
  if (method === undefined) return 'GET';
  if (KNOWN_METHODS.has(method)) return method;
  const upper = method.toUpperCase();
  return KNOWN_METHODS.has(upper) ? upper : '_OTHER';
}

/** `error.type`: a meshwork/undici/Node error code when there is one, else the error's class name. */
export function errorType(err: unknown): string {
  if (err !== null && typeof err === 'object') {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    const name = (err as { name?: unknown }).name;
    if (typeof name === 'string' && name !== '' && name !== 'Error') return name;
  }
  return '_OTHER';
}

/** Splits `host[:port]` (IPv6 in brackets) into address and port, with the scheme's default port. */
export function splitAuthority(authority: string, scheme: string): { address: string; port: number } {
  const at = authority.lastIndexOf('@');
  const a = at === -1 ? authority : authority.slice(at + 1);
  const colon = a.lastIndexOf(':');
  if (colon !== -1 && colon > a.lastIndexOf(']')) {
    const port = Number(a.slice(colon + 1));
    if (Number.isInteger(port) && port > 0) return { address: a.slice(0, colon).toLowerCase(), port };
    return { address: a.slice(0, colon).toLowerCase(), port: scheme === 'https' ? 443 : 80 };
  }
  return { address: a.toLowerCase(), port: scheme === 'https' ? 443 : 80 };
}

/** Adds an event to a span when it records (ejections, budget exhaustion, retries). */
export function spanEvent(span: Span | undefined, name: string, attributes: Attributes): void {
  if (span?.isRecording()) span.addEvent(name, attributes);
}

// ── inbound (SERVER) spans ─────────────────────────────────────────────────────────────────

export interface ServerSpanOptions {
  /** Low-cardinality route template (`/bookings/:id`), for `http.route` and the span name. */
  route?: string | undefined;
  /** Clock for the duration metric, in ms (default performance.now). */
  now?: () => number;
}

/** What `startServerSpan` returns; pass it to `endServerSpan`. */
export interface ServerSpan {
  /**
   * The SERVER span: meshwork's own, or the one another instrumentation (instrumentation-http)
   * already started for this request (then `owned` is false). Undefined without a tracer.
   */
  readonly span: Span | undefined;
  /** Run the application's handler in this context so its outbound calls are children. */
  readonly context: Context;
  /**
   * True when meshwork started the span (and measures `http.server.request.duration`); false
   * when it reuses the span of another instrumentation, which ends it and records the metric.
   */
  readonly owned: boolean;
  readonly method: string;
  readonly scheme: string;
  readonly protocolVersion: string | undefined;
  route: string | undefined;
  readonly start: number;
  ended: boolean;
}

/**
 * The span another instrumentation already made active for this inbound request (the SERVER
 * span of @opentelemetry/instrumentation-http, or a framework's middleware span under it), or
 * undefined. A span counts when it has not ended and, if the request carries a valid
 * `traceparent`, when it belongs to that trace (a span left active by code that started the
 * server, a "startup" span, is not this request's).
 */
function foreignServerSpan(active: Context, req: IncomingMessage): Span | undefined {
  const span = trace.getSpan(active);
  if (span === undefined) return undefined;
  if ((span as { ended?: unknown }).ended === true) return undefined;
  const sc = span.spanContext();
  if (isSpanContextValid(sc)) {
    const tp = req.headers.traceparent;
    const inbound = typeof tp === 'string' ? TRACEPARENT.exec(tp.trim()) : null;
    if (inbound !== null && inbound[1] !== '00000000000000000000000000000000' && inbound[1] !== sc.traceId)
      return undefined;
  }
  return span;
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;

/** `network.protocol.version` from Node's `httpVersion` ('1.1', '2.0' → '2'). */
function protocolVersion(req: IncomingMessage): string | undefined {
  const v = req.httpVersion;
  if (v === '1.1' || v === '1.0') return v;
  if (v === '2.0') return '2';
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Opens the SERVER span of an inbound request (for mesh.inbound()), or reuses the one another
 * instrumentation already started:
 *
 * - When a span is already active for this request (instrumentation-http started it, and a
 *   framework instrumentation may have put a middleware span under it), that context is kept
 *   as it is: the application's spans and meshwork's outbound spans become its children, and
 *   the other instrumentation ends it and records `http.server.request.duration`.
 * - Otherwise it extracts the caller's trace context from the request headers with the global
 *   propagator and starts a SERVER span with `http.request.method`, `url.path`, `url.query`
 *   (secrets redacted), `url.scheme`, `server.address`, `server.port`, `client.address`,
 *   `network.protocol.version`, `user_agent.original` and `http.route`; `endServerSpan` ends it
 *   and records `http.server.request.duration`.
 *
 * Run the handler inside `context.with(s.context, ...)`, then call `endServerSpan(s, res)` (or
 * pass `res` here to end it on 'finish' / 'close').
 */
export function startServerSpan(
  req: IncomingMessage,
  res?: ServerResponse,
  opts: ServerSpanOptions = {},
): ServerSpan {
  const now = opts.now ?? (() => performance.now());
  const method = normalizeMethod(req.method);
  const scheme = (req.socket as { encrypted?: boolean } | undefined)?.encrypted ? 'https' : 'http';
  const version = protocolVersion(req);
  const active = context.active();
  const foreign = foreignServerSpan(active, req);
  if (foreign !== undefined)
    return {
      span: foreign,
      context: active,
      owned: false,
      method,
      scheme,
      protocolVersion: version,
      route: opts.route,
      start: now(),
      ended: false,
    };
  // A fresh trace context for this request: the caller's, else none (never a span left active
  // by whatever started the server).
  let ctx = trace.deleteSpan(active);
  ctx = propagation.extract(ctx, req.headers);
  let span: Span | undefined;
  const tracer = activeTracer();
  if (tracer) {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const host = splitAuthority(req.headers.host ?? '', scheme);
    const attrs: Attributes = {
      'http.request.method': method,
      'url.scheme': scheme,
      'url.path': q === -1 ? target : target.slice(0, q),
      'server.address': host.address,
      'server.port': host.port,
    };
    if (method === '_OTHER' && req.method) attrs['http.request.method_original'] = req.method;
    if (q !== -1) attrs['url.query'] = redactPath(`/?${target.slice(q + 1)}`).slice(2);
    if (req.socket?.remoteAddress) attrs['client.address'] = req.socket.remoteAddress;
    if (version !== undefined) attrs['network.protocol.version'] = version;
    if (req.headers['user-agent']) attrs['user_agent.original'] = req.headers['user-agent'];
    if (opts.route) attrs['http.route'] = opts.route;
    const name = method === '_OTHER' ? 'HTTP' : method;
    span = tracer.startSpan(
      opts.route ? `${name} ${opts.route}` : name,
      { kind: SpanKind.SERVER, attributes: attrs },
      ctx,
    );
    ctx = trace.setSpan(ctx, span);
  }
  const s: ServerSpan = {
    span,
    context: ctx,
    owned: true,
    method,
    scheme,
    protocolVersion: version,
    route: opts.route,
    start: now(),
    ended: false,
  };
  if (res) {
    res.once('finish', () => endServerSpan(s, res, undefined, now));
    res.once('close', () => {
      if (!res.writableFinished) endServerSpan(s, res, new Error('response closed before it finished'), now);
    });
  }
  return s;
}

/**
 * Ends a SERVER span meshwork started: `http.response.status_code`, `error.type` (the status
 * code for 5xx, or the error's type), span status, and records `http.server.request.duration`.
 * Idempotent; does nothing to a span another instrumentation owns (`owned: false`).
 */
export function endServerSpan(
  s: ServerSpan,
  res: { statusCode: number } | undefined,
  error?: unknown,
  now: () => number = () => performance.now(),
): void {
  if (s.ended || !s.owned) return;
  s.ended = true;
  const status = res?.statusCode ?? 0;
  const errType = error !== undefined ? errorType(error) : status >= 500 ? String(status) : undefined;
  const span = s.span;
  if (span?.isRecording()) {
    if (status > 0) span.setAttribute('http.response.status_code', status);
    if (s.route) span.setAttribute('http.route', s.route);
    if (errType !== undefined) {
      span.setAttribute('error.type', errType);
      span.setStatus({ code: SpanStatusCode.ERROR });
      if (error instanceof Error) span.recordException(error);
    }
  }
  span?.end();
  if (otelRegistered()) {
    const attrs: Attributes = { 'http.request.method': s.method, 'url.scheme': s.scheme };
    if (status > 0) attrs['http.response.status_code'] = status;
    if (s.route) attrs['http.route'] = s.route;
    if (errType !== undefined) attrs['error.type'] = errType;
    if (s.protocolVersion !== undefined) attrs['network.protocol.version'] = s.protocolVersion;
    instruments().serverDuration.record((now() - s.start) / 1000, attrs);
  }
}
