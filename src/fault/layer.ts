import { respondLocally } from '../http/synthetic.ts';
import { deadController, type EndpointLayer, type Layer } from '../pipeline.ts';
import { type ChaosDecision, decideChaos, decideFault, type Random } from './decide.ts';

/**
 * Istio fault injection, once per request, above retries: an injected delay waits before the
 * request goes on; an injected abort answers with its status and is never retried (Envoy's
 * fault filter runs before the router).
 */
export function faults(random: Random = Math.random): Layer {
  return (next) => (req, handler) => {
    const fault = req.route?.route.config.fault;
    if (fault === undefined) return next(req, handler);
    const d = decideFault(fault, random);
    const go = () => {
      if (d.abortStatus !== undefined) {
        respondLocally(handler, d.abortStatus, 'fault filter abort', { 'x-meshwork-fault': 'abort' });
      } else next(req, handler);
    };
    if (d.delayMs !== undefined && d.delayMs > 0) setTimeout(go, d.delayMs);
    else go();
  };
}

/** The error an injected reset fails an attempt with: shaped like a real socket reset. */
export class ChaosResetError extends Error {
  readonly code = 'ECONNRESET';
  constructor() {
    super('meshwork chaos: injected connection reset');
    this.name = 'ChaosResetError';
  }
}

/**
 * Attempt-level chaos (like Polly's Simmy), the innermost endpoint layer: every attempt draws
 * its own latency/reset/abort, so the retry layer, outlier detection and breakers above see the
 * injected failures exactly as they would see real ones.
 */
export function chaos(random: Random = Math.random): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const cfg = req.route?.route.config.chaos;
    if (cfg === undefined) return next(ep, req, handler);
    const d: ChaosDecision = decideChaos(cfg, random);
    const go = () => {
      if (d.reset) {
        handler.onResponseError?.(deadController, new ChaosResetError());
      } else if (d.abortStatus !== undefined) {
        respondLocally(handler, d.abortStatus, 'meshwork chaos abort', { 'x-meshwork-chaos': 'abort' });
      } else next(ep, req, handler);
    };
    if (d.delayMs !== undefined && d.delayMs > 0) setTimeout(go, d.delayMs);
    else go();
  };
}
