import type { Layer } from '../pipeline.ts';
import { hasPropagator, injectActive } from './otel.ts';
import type { ContextRuntime } from './runtime.ts';

/**
 * The outermost request layer: adds the current request context (gateway headers, trace,
 * baggage, token, remaining deadline) to the outbound request, before routing reads headers.
 * A header the caller set explicitly wins. With an OpenTelemetry SDK registered, the active
 * OTel context is injected (continuing the trace); without one, the inbound trace headers
 * are forwarded unchanged.
 */
export function contextLayer(runtime: ContextRuntime): Layer {
  return (next) => (req, handler) => {
    const fromContext = runtime.outbound();
    // Nothing to add (no inbound context, no OpenTelemetry propagator): no work at all.
    if (fromContext === undefined && !hasPropagator()) return next(req, handler);
    const add = fromContext ?? {};
    injectActive(add);
    if (!runtime.baggage) delete add.baggage;
    const headers = req.opts.headers;
    for (const k in add) if (headers[k] === undefined) headers[k] = add[k] as string;
    next(req, handler);
  };
}
