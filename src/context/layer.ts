import { context } from '@opentelemetry/api';
import type { Layer } from '../pipeline.ts';
import { suppressTracing } from '../telemetry/tracing.ts';
import { hasPropagator, injectActive } from './otel.ts';
import type { ContextRuntime } from './runtime.ts';

/**
 * The outermost request layer: adds the current request context (gateway headers, trace,
 * baggage, token, remaining deadline) to the outbound request, before routing reads headers.
 * A header the caller set explicitly wins. With an OpenTelemetry SDK registered, the active
 * OTel context is injected (continuing the trace); without one, the inbound trace headers
 * are forwarded unchanged. When the telemetry layers are left out (`telemetry: false`), the rest
 * of the request runs with tracing suppressed, so an undici instrumentation does not add a
 * second `traceparent` (with them, the attempt layer does that, per attempt).
 */
export function contextLayer(runtime: ContextRuntime): Layer {
  return (next) => (req, handler) => {
    const fromContext = runtime.outbound();
    const propagates = hasPropagator();
    // Nothing to add (no inbound context, no OpenTelemetry propagator): no work at all.
    if (fromContext === undefined && !propagates) return next(req, handler);
    const add = fromContext ?? {};
    injectActive(add);
    if (!runtime.baggage) delete add.baggage;
    const headers = req.opts.headers;
    for (const k in add) if (headers[k] === undefined) headers[k] = add[k] as string;
    if (propagates && req.telemetry === undefined)
      context.with(suppressTracing(context.active()), next, undefined, req, handler);
    else next(req, handler);
  };
}
