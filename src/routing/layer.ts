import { InvalidPathError, TlsRequiredError } from '../errors.ts';
import { ResponseHeadersHandler } from '../http/response-headers.ts';
import { respondLocally } from '../http/synthetic.ts';
import { failRequest, type Layer, type ServiceView } from '../pipeline.ts';
import { wantsTls } from '../tls/scheme.ts';
import type { Random } from './destination.ts';
import { applyRequestRoute, applyResponseRoute } from './router.ts';

/**
 * The routing layer: normalize the path (so `/api/../admin` cannot match a `/api/` prefix and
 * escape it upstream; a path that cannot be normalized fails with MESHWORK_ERR_INVALID_PATH),
 * match the request against its service's `http` routes (first match wins),
 * pick a weighted destination, switch service when `destination.host` names another one, set
 * the subset, and apply the route's request header edits and rewrites. Response header edits
 * wrap the handler. An https:// request whose destination has no TLS is refused. A service with routes where none matches answers 404, as Istio does ("NR").
 */
export function routingLayer(
  services: ReadonlyMap<string, ServiceView>,
  random: Random = Math.random,
): Layer {
  return (next) => (req, handler) => {
    const router = req.service.router;
    if (router.size === 0) return next(req, handler);
    const path = router.normalize(req.opts.path);
    if (typeof path !== 'string') {
      failRequest(handler, new InvalidPathError(req.service.name, req.opts.path, path.reason));
      return;
    }
    req.opts.path = path;
    const d = router.route(req.opts, random);
    if (d === undefined) {
      respondLocally(handler, 404, `meshwork: no route of service "${req.service.name}" matched\n`, {
        'x-meshwork-no-route': req.service.name,
      });
      return;
    }
    req.telemetry?.noteRoute(d.route.config.name ?? `${req.service.name}.http[${d.route.index}]`);
    // CORS (as the sidecar's CORS filter): a preflight from an allowed origin is answered here.
    const cors = d.route.cors;
    const origin = cors === undefined ? undefined : req.opts.headers.origin;
    if (cors !== undefined && typeof origin === 'string') {
      const pre = cors.preflight(req.opts.method, req.opts.headers);
      if (pre !== undefined) return respondLocally(handler, pre.status, pre.body, pre.headers);
    }
    // redirect / directResponse: the mesh answers by itself (Envoy's redirect and direct_response).
    const local = d.route.local;
    if (local !== undefined) {
      const host = req.opts.headers.host;
      const a = local(
        {
          origin: req.opts.origin,
          path: req.opts.path,
          host: typeof host === 'string' ? host : req.authority,
        },
        d.hit,
      );
      return respondLocally(handler, a.status, a.body, a.headers);
    }
    // The route's retries and timeout (compiled once per route by the owning service).
    req.retryPolicy = req.service.retry.routes[d.route.index];
    const dest = d.destination.destination;
    if (dest.host !== undefined && dest.host !== req.service.name) {
      // Validated with the config: the host is a service of the config the request started on.
      req.service = (req.services ?? services).get(dest.host) as ServiceView;
    }
    // The destination decides what goes on the wire: an https:// request is never sent in cleartext.
    if (req.service.tls === undefined && wantsTls(req.opts.origin)) {
      failRequest(handler, new TlsRequiredError(req.service.name));
      return;
    }
    req.route = d;
    // A per-call subset pin wins over the route's choice (set by the dispatcher when there are no routes).
    req.subset = req.call?.subset ?? dest.subset;
    req.port = dest.port?.number;
    req.opts.path = applyRequestRoute(d, req.opts.path, req.opts.headers);
    const corsHeaders =
      cors !== undefined && typeof origin === 'string' ? cors.responseHeaders(origin) : undefined;
    const editsResponse =
      corsHeaders !== undefined ||
      d.route.headers.response !== undefined ||
      d.route.destinationHeaders.get(d.destination)?.response !== undefined;
    next(
      req,
      editsResponse
        ? new ResponseHeadersHandler(handler, (h) => {
            applyResponseRoute(d, h);
            if (corsHeaders !== undefined) Object.assign(h, corsHeaders);
          })
        : handler,
    );
  };
}
