/**
 * Routes the mesh answers by itself, as the sidecar does: `redirect` (Envoy's redirect action)
 * and `directResponse` (Envoy's direct_response). Compiled once per route.
 */
import type { RouteHit } from './match.ts';
import { requestPort, requestScheme } from './match.ts';
import type { DirectResponseConfig, RedirectConfig } from './schema.ts';

export interface LocalAnswer {
  readonly status: number;
  readonly body: string | Uint8Array;
  readonly headers: Record<string, string>;
}

export interface LocalRequest {
  readonly origin?: unknown;
  /** Path with query string. */
  readonly path: string;
  /** The Host header the request carries (its authority). */
  readonly host: string;
}

export type LocalResponder = (req: LocalRequest, hit: RouteHit) => LocalAnswer;

/** `host:port` split; IPv6 in brackets. */
function splitAuthority(authority: string): { host: string; port: string | undefined } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
  return m ? { host: m[1] as string, port: m[2] || undefined } : { host: authority, port: undefined };
}

const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' };

function redirectResponder(r: RedirectConfig): LocalResponder {
  const status = r.redirectCode ?? 301;
  return (req, hit) => {
    const scheme = r.scheme ?? requestScheme(req.origin);
    const from = splitAuthority(req.host);
    let host = from.host;
    let port = from.port;
    if (r.authority !== undefined) {
      const to = splitAuthority(r.authority);
      host = to.host;
      port = to.port;
    }
    if (r.port !== undefined) port = String(r.port);
    else if (r.derivePort === 'FROM_REQUEST_PORT') port = String(requestPort(req.origin));
    else if (r.derivePort === 'FROM_PROTOCOL_DEFAULT') port = undefined;
    // A port that is the scheme's default is not written (as Envoy writes Location).
    if (port !== undefined && DEFAULT_PORT[scheme.toLowerCase()] === port) port = undefined;
    const q = req.path.indexOf('?');
    const bare = q < 0 ? req.path : req.path.slice(0, q);
    const query = q < 0 ? '' : req.path.slice(q);
    let path = req.path;
    if (r.uri !== undefined) path = r.uri.includes('?') ? r.uri : r.uri + query;
    else if (r.prefixRewrite !== undefined) {
      const prefix = hit.uriPrefix ?? bare;
      path = r.prefixRewrite + bare.slice(prefix.length) + query;
    }
    const location = `${scheme}://${host}${port === undefined ? '' : `:${port}`}${path}`;
    return { status, body: '', headers: { location } };
  };
}

function directResponder(d: DirectResponseConfig): LocalResponder {
  const body: string | Uint8Array =
    d.body === undefined ? '' : 'string' in d.body ? d.body.string : Buffer.from(d.body.bytes, 'base64');
  const answer: LocalAnswer = { status: d.status, body, headers: {} };
  return () => answer;
}

/** The responder of a route that answers by itself, or undefined for a route that forwards. */
export function compileLocal(route: {
  redirect?: RedirectConfig | undefined;
  directResponse?: DirectResponseConfig | undefined;
}): LocalResponder | undefined {
  if (route.redirect !== undefined) return redirectResponder(route.redirect);
  if (route.directResponse !== undefined) return directResponder(route.directResponse);
  return undefined;
}
