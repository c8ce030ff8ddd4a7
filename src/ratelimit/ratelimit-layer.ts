import type { ContextRuntime } from '../context/runtime.ts';
import { respondLocally } from '../http/synthetic.ts';
import type { Layer } from '../pipeline.ts';
import type { Verdict } from './limiter.ts';

/**
 * Outbound rate limits (`services.<name>.rateLimits`): the callee's quota is checked before
 * anything is sent. It sits after routing, so it sees the service the request really goes to
 * (`destination.host`) and the path as it will be sent, and before body, mirror and retry, so a
 * refused call sends nothing at all (no mirror copy, no attempt) and a retried call is one request
 * against the quota, as the callee counts it. A refusal is the mesh's own answer (429 with
 * Retry-After and the RateLimit headers, or the configured status), delivered like any response.
 * A service without rate limits passes straight through.
 */
export function rateLimitLayer(context: ContextRuntime): Layer {
  return (next) => (req, handler) => {
    const limiter = req.service.rateLimits;
    if (limiter === undefined) return next(req, handler);
    const ctx = context.current();
    const v = limiter.check({
      method: req.opts.method,
      path: req.opts.path,
      headers: req.opts.headers,
      ctx,
      principal: ctx?.principal,
    });
    const go = (verdict: Verdict) => {
      const r = verdict.refusal;
      if (r === undefined) next(req, handler);
      else respondLocally(handler, r.status, r.body, r.headers);
    };
    if (v instanceof Promise)
      v.then(go, (err: unknown) => respondLocally(handler, 500, `rate limits failed: ${String(err)}\n`));
    else go(v);
  };
}
