/**
 * `corsPolicy`, enforced as Envoy's CORS filter does in the client sidecar: a request carrying
 * an `Origin` the policy allows gets the CORS response headers; a preflight (OPTIONS with
 * `Access-Control-Request-Method`) from an allowed origin is answered by the mesh. A preflight
 * from another origin is forwarded (`unmatchedPreflights: FORWARD`, the default) or answered
 * without CORS headers (`IGNORE`).
 */
import type { LocalAnswer } from './local.ts';
import { compileRegex } from './regex.ts';
import type { CorsPolicyConfig, StringMatch } from './schema.ts';

export interface CompiledCors {
  /** The local answer to a preflight, or undefined to forward the request. */
  preflight(
    method: string,
    headers: Readonly<Record<string, string | string[] | undefined>>,
  ): LocalAnswer | undefined;
  /** Response headers for a request from `origin`, or undefined when the origin is not allowed. */
  responseHeaders(origin: string): Record<string, string> | undefined;
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function compileCors(policy: CorsPolicyConfig): CompiledCors {
  const origins = policy.allowOrigins ?? [];
  // Regexes were checked by the schema (RE2 syntax); compile them once.
  const tests = origins.map((m: StringMatch): ((o: string) => boolean) => {
    if (m.exact !== undefined) return m.exact === '*' ? () => true : (o) => o === m.exact;
    if (m.prefix !== undefined) return (o) => o.startsWith(m.prefix as string);
    if (m.regex !== undefined) {
      const re = compileRegex(m.regex);
      return (o) => re.test(o);
    }
    return () => false;
  });
  const allowed = (origin: string) => tests.some((t) => t(origin));
  const common = (origin: string): Record<string, string> => {
    const h: Record<string, string> = { 'access-control-allow-origin': origin };
    if (policy.allowCredentials) h['access-control-allow-credentials'] = 'true';
    return h;
  };
  const ignoreUnmatched = policy.unmatchedPreflights === 'IGNORE';
  return {
    preflight(method, headers) {
      if (method !== 'OPTIONS') return undefined;
      const origin = single(headers.origin);
      if (origin === undefined || single(headers['access-control-request-method']) === undefined)
        return undefined;
      if (!allowed(origin)) return ignoreUnmatched ? { status: 200, body: '', headers: {} } : undefined;
      const h = common(origin);
      if (policy.allowMethods?.length) h['access-control-allow-methods'] = policy.allowMethods.join(',');
      if (policy.allowHeaders?.length) h['access-control-allow-headers'] = policy.allowHeaders.join(',');
      if (policy.maxAge !== undefined) h['access-control-max-age'] = String(Math.floor(policy.maxAge / 1000));
      return { status: 200, body: '', headers: h };
    },
    responseHeaders(origin) {
      if (!allowed(origin)) return undefined;
      const h = common(origin);
      if (policy.exposeHeaders?.length) h['access-control-expose-headers'] = policy.exposeHeaders.join(',');
      return h;
    },
  };
}
