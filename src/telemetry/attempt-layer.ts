import type { EndpointLayer } from '../pipeline.ts';

/** Below the balancer: records each attempt (endpoint, attempt number, retry reason). */
export function attemptLayer(): EndpointLayer {
  return (next) => (ep, req, handler) => {
    const t = req.telemetry;
    if (t !== undefined) t.noteAttempt(ep, req.attempt);
    next(ep, req, handler);
  };
}
