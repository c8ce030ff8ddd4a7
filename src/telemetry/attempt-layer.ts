import { context } from '@opentelemetry/api';
import type { EndpointLayer } from '../pipeline.ts';
import { otelHas } from './otel-global.ts';
import { suppressTracing } from './tracing.ts';

/**
 * Below the balancer, outermost: hands each attempt, with the endpoint the balancer chose, to
 * the request's telemetry, which traces, measures and sends it (telemetry-layer.ts). A request
 * nothing observes (a mirrored copy, or no SDK and no subscriber) goes straight on; with an
 * OpenTelemetry propagator registered, it goes on with tracing suppressed, so an undici
 * instrumentation adds no second `traceparent` to the one the mesh already set.
 */
export function attemptLayer(): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const t = req.telemetry;
    if (t !== undefined) t.attempt(ep, req, handler, next);
    else if (otelHas('propagation'))
      context.with(suppressTracing(context.active()), next, undefined, ep, req, handler);
    else next(ep, req, handler);
  };
}
