import type { Clock } from '../clock.ts';
import { NoEndpointsError } from '../errors.ts';
import { ResponseHeadersHandler } from '../http/response-headers.ts';
import { type Dispatch, type EndpointDispatch, failRequest, type MeshRequest } from '../pipeline.ts';
import type { Endpoint } from './endpoint.ts';
import { hashKeyFor, sourceAddress } from './hash-key.ts';

/**
 * The boundary between per-request and per-endpoint layers: pick one endpoint of the request's
 * subset and hand the request to the endpoint stack. Before discovery's first resolution it
 * waits (bounded by the service's initialTimeout); with nothing to pick it fails fast.
 */
export function balance(next: EndpointDispatch, clock: Clock): Dispatch {
  const dispatch: Dispatch = (req, rawHandler) => {
    let handler = rawHandler;
    const hash = req.service.endpoints.group(req.subset, req.port)?.hash;
    if (hash !== undefined) {
      if (req.hashKey === undefined) {
        const r = hashKeyFor(hash, {
          headers: req.opts.headers,
          path: req.opts.path,
          sourceIp: sourceAddress(),
        });
        req.hashKey = r?.key ?? null;
        req.hashCookie = r?.setCookie;
      }
      const cookie = req.hashCookie;
      if (cookie !== undefined) handler = new ResponseHeadersHandler(handler, (h) => addSetCookie(h, cookie));
    }
    const ep = pick(req, clock());
    if (ep) return next(ep, req, handler);
    const set = req.service.endpoints;
    if (!set.isReady) {
      set.whenReady(req.service.initialTimeoutMs).then(() => {
        const late = pick(req, clock());
        if (late) next(late, req, handler);
        else failRequest(handler, noEndpoints(req));
      });
      return;
    }
    failRequest(handler, noEndpoints(req));
  };
  return dispatch;
}

function pick(req: MeshRequest, now: number): Endpoint | undefined {
  const group = req.service.endpoints.group(req.subset, req.port);
  if (!group) return undefined;
  const tried = req.tried;
  const hashKey = req.hashKey ?? undefined;
  const ep = group.balancer.pick(group.endpoints, { now, exclude: tried, hashKey });
  // Avoid endpoints already tried, but reuse one rather than fail when nothing else is left.
  if (ep || !tried || tried.size === 0) return ep;
  return group.balancer.pick(group.endpoints, { now, hashKey });
}

function noEndpoints(req: MeshRequest): NoEndpointsError {
  const set = req.service.endpoints;
  const group = set.group(req.subset, req.port);
  const where =
    (req.subset === undefined ? '' : `subset "${req.subset}": `) +
    (req.port === undefined ? '' : `port ${req.port}: `);
  if (!set.isReady) {
    return new NoEndpointsError(
      req.service.name,
      `${where}discovery (${set.status.provider}) gave no endpoints within ${req.service.initialTimeoutMs} ms` +
        (set.status.lastError ? `; last error: ${set.status.lastError}` : ''),
    );
  }
  if (!group) return new NoEndpointsError(req.service.name, `unknown subset "${req.subset}"`);
  const total = group.endpoints.length;
  return new NoEndpointsError(
    req.service.name,
    total === 0
      ? `${where}discovery returned 0 endpoints`
      : `${where}none of ${total} endpoints is available (all unhealthy, ejected or draining)`,
  );
}

function addSetCookie(headers: Record<string, string | string[]>, cookie: string): void {
  const prev = headers['set-cookie'];
  headers['set-cookie'] = prev === undefined ? cookie : [...(Array.isArray(prev) ? prev : [prev]), cookie];
}
