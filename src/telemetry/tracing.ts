/**
 * Spans through @opentelemetry/api only: without a registered SDK nothing is created.
 * `otelRegistered()` is the request path's cheap check (one global property read);
 * `activeTracer()` hands out meshwork's tracer, cached per tracer provider.
 *
 * The CLIENT span of a logical request is opened by the request layer (request-layer.ts).
 * The inbound side (mesh.inbound()) uses `startServerSpan` / `endServerSpan` below.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type Attributes,
  type Context,
  context,
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
  /** The SERVER span (a non-recording one without an SDK). */
  readonly span: Span | undefined;
  /** Run the application's handler in this context so its outbound calls are children. */
  readonly context: Context;
  readonly method: string;
  readonly scheme: string;
  route: string | undefined;
  readonly start: number;
  ended: boolean;
}

/**
 * Opens the SERVER span of an inbound request (for mesh.inbound()): extracts the
 * caller's trace context from the request headers with the global propagator, and sets
 * `http.request.method`, `url.path`, `url.query` (secrets redacted), `url.scheme`,
 * `server.address`, `server.port`, `client.address`, `user_agent.original` and `http.route`.
 * Run the handler inside `context.with(s.context, ...)`, then call `endServerSpan(s, res)`
 * (or pass `res` here to end it automatically on 'finish' / 'close').
 */
export function startServerSpan(
  req: IncomingMessage,
  res?: ServerResponse,
  opts: ServerSpanOptions = {},
): ServerSpan {
  const now = opts.now ?? (() => performance.now());
  const method = normalizeMethod(req.method);
  const scheme = (req.socket as { encrypted?: boolean } | undefined)?.encrypted ? 'https' : 'http';
  let ctx = context.active();
  let span: Span | undefined;
  const tracer = activeTracer();
  if (tracer) {
    ctx = propagation.extract(ctx, req.headers);
    span = tracer.startSpan(opts.route ? `${method} ${opts.route}` : method, { kind: SpanKind.SERVER }, ctx);
    if (span.isRecording()) {
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
      if (req.headers['user-agent']) attrs['user_agent.original'] = req.headers['user-agent'];
      if (opts.route) attrs['http.route'] = opts.route;
      span.setAttributes(attrs);
    }
    ctx = trace.setSpan(ctx, span);
  }
  const s: ServerSpan = { span, context: ctx, method, scheme, route: opts.route, start: now(), ended: false };
  if (res) {
    res.once('finish', () => endServerSpan(s, res, undefined, now));
    res.once('close', () => {
      if (!res.writableFinished) endServerSpan(s, res, new Error('response closed before it finished'), now);
    });
  }
  return s;
}

/**
 * Ends a SERVER span: `http.response.status_code`, `error.type` (the status code for 5xx, or
 * the error's type), span status, and records `http.server.request.duration`. Idempotent.
 */
export function endServerSpan(
  s: ServerSpan,
  res: { statusCode: number } | undefined,
  error?: unknown,
  now: () => number = () => performance.now(),
): void {
  if (s.ended) return;
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
    instruments().serverDuration.record((now() - s.start) / 1000, attrs);
  }
}
