import type { Layer } from '../pipeline.ts';
import type { ContextRuntime } from './runtime.ts';

/**
 * The per-destination rule on gateway context (`services.<name>.context.propagate`): the gateway
 * context headers the destination may not have are removed from the request, whoever set them
 * (the context layer, the caller's code, a route). By default a service of this mesh gets them
 * all, and a service behind another mesh's gateway gets none. Trace headers (traceparent,
 * tracestate) and the deadline are not gateway context and always go. After routing and mirroring,
 * so the rule judged is the final destination's, a mirror copy's included.
 */
export function propagateLayer(runtime: ContextRuntime): Layer {
  return (next) => (req, handler) => {
    const allowed = req.service.contextAllowed;
    if (allowed !== undefined) {
      const headers = req.opts.headers;
      for (const name of runtime.gatewayHeaders)
        if (headers[name] !== undefined && !allowed.has(name)) delete headers[name];
    }
    next(req, handler);
  };
}
