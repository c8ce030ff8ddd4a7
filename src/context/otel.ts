/**
 * OpenTelemetry bridge through `@opentelemetry/api` only. With no SDK registered, the API's
 * propagator is a no-op with no fields: the mesh then forwards `traceparent`, `tracestate` and
 * `baggage` as they came in, so it never breaks a trace.
 */

import type { IncomingHttpHeaders } from 'node:http';
import { type Context, context, propagation, ROOT_CONTEXT, type TextMapGetter } from '@opentelemetry/api';
import { otelHas } from '../telemetry/otel-global.ts';

/**
 * True when a global propagator has been registered that propagates something (the API's no-op
 * one has no fields). Nothing registered: answered from the API's registry, without a call.
 */
export function hasPropagator(): boolean {
  return otelHas('propagation') && propagation.fields().length > 0;
}

const getter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key.toLowerCase()],
};

/** Extracts the remote trace context of an inbound request, or undefined without an SDK. */
export function extractInbound(headers: IncomingHttpHeaders): Context | undefined {
  if (!hasPropagator()) return undefined;
  return propagation.extract(ROOT_CONTEXT, headers, getter);
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
