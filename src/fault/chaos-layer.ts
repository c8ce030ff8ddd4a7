import { respondLocally } from '../http/synthetic.ts';
import { type EndpointLayer, failRequest } from '../pipeline.ts';
import { type ChaosDecision, decideChaos, type Random } from './decide.ts';

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
export function chaosLayer(random: Random = Math.random): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const cfg = req.route?.route.config.chaos;
    if (cfg === undefined) return next(ep, req, handler);
    const d: ChaosDecision = decideChaos(cfg, random);
    const go = () => {
      if (d.reset) {
        failRequest(handler, new ChaosResetError());
      } else if (d.abortStatus !== undefined) {
        respondLocally(handler, d.abortStatus, 'meshwork chaos abort', { 'x-meshwork-chaos': 'abort' });
      } else next(ep, req, handler);
    };
    if (d.delayMs !== undefined && d.delayMs > 0) setTimeout(go, d.delayMs);
    else go();
  };
}
