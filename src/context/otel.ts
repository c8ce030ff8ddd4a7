/**
 * OpenTelemetry bridge through `@opentelemetry/api` only. With no SDK registered, the API's
 * propagator is a no-op with no fields: the mesh then forwards `traceparent`, `tracestate` and
 * `baggage` as they came in, so it never breaks a trace.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Context, context, propagation } from '@opentelemetry/api';
import { otelHas } from '../telemetry/otel-global.ts';
import { startServerSpan } from '../telemetry/tracing.ts';

/**
 * True when a global propagator has been registered that propagates something (the API's no-op
 * one has no fields). Nothing registered: answered from the API's registry, without a call.
 */
export function hasPropagator(): boolean {
  return otelHas('propagation') && propagation.fields().length > 0;
}

/**
 * The OpenTelemetry context an inbound request's handler runs in (mesh.inbound() and its
 * adapters), or undefined to run it in the current one. Nothing registered: undefined, no work.
 * When another instrumentation (instrumentation-http) already made this request's SERVER span
 * active, that context is kept (undefined). Otherwise meshwork starts the SERVER span itself
 * (ended on the response's 'finish' or 'close', which records `http.server.request.duration`),
 * or with a propagator and no tracer, only continues the caller's trace context.
 */
export function inboundOtel(req: IncomingMessage, res: ServerResponse | undefined): Context | undefined {
  if (!otelHas('trace') && !otelHas('metrics') && !hasPropagator()) return undefined;
  const s = startServerSpan(req, res);
  return s.owned ? s.context : undefined;
}

/** Runs fn with the extracted OTel context active (a no-op when there is none). */
export function runInOtel<T>(ctx: Context | undefined, fn: () => T): T {
  return ctx ? context.with(ctx, fn) : fn();
}

/**
 * Writes the active OTel context's propagation headers (W3C traceparent/tracestate/baggage,
 * or whatever propagator is registered) into `carrier`, over the forwarded ones.
 */
export function injectActive(carrier: Record<string, string>): void {
  if (!hasPropagator()) return;
  propagation.inject(context.active(), carrier, {
    set: (c, k, v) => {
      c[k.toLowerCase()] = v;
    },
  });
}
