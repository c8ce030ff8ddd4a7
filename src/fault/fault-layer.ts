import { respondLocally } from '../http/synthetic.ts';
import type { Layer } from '../pipeline.ts';
import { decideFault, type Random } from './decide.ts';

/**
 * Istio fault injection, once per request, above retries: an injected delay waits before the
 * request goes on; an injected abort answers with its status and is never retried (Envoy's
 * fault filter runs before the router).
 */
export function faultLayer(random: Random = Math.random): Layer {
  return (next) => (req, handler) => {
    const fault = req.route?.route.config.fault;
    if (fault === undefined) return next(req, handler);
    const d = decideFault(fault, random);
    const go = () => {
      if (d.abortStatus !== undefined) {
        respondLocally(handler, d.abortStatus, 'fault filter abort', { 'x-meshwork-fault': 'abort' });
      } else if (d.abortGrpc !== undefined) {
        // Envoy's gRPC abort: a trailers-only gRPC answer (HTTP 200, grpc-status in the headers).
        respondLocally(handler, 200, '', {
          'content-type': 'application/grpc',
          'grpc-status': String(d.abortGrpc),
          'grpc-message': 'fault filter abort',
          'x-meshwork-fault': 'abort',
        });
      } else next(req, handler);
    };
    if (d.delayMs !== undefined && d.delayMs > 0) setTimeout(go, d.delayMs);
    else go();
  };
}
