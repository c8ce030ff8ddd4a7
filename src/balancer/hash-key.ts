import { randomBytes } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import type { ConsistentHashConfig } from './schema.ts';

/** What hashKeyFor needs to know about an outbound request. */
export interface HashRequest {
  /** Request headers; names are matched case-insensitively. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Path with query string ("/a/b?x=1"). */
  readonly path: string;
  /**
   * For `useSourceIp`: the source address. The mesh is the client, so it is this process's own
   * address (`sourceAddress()`): every request of this process hashes to the same endpoint, as
   * every request of one pod does behind an Istio sidecar.
   */
  readonly sourceIp?: string | undefined;
  /** For `contextKey`: the gateway context, when the pipeline holds it apart from the headers. */
  readonly context?: Readonly<Record<string, string | undefined>> | undefined;
}

export interface HashKeyResult {
  key: string;
  /** A Set-Cookie header value to add to the response: the cookie was missing and was generated. */
  setCookie?: string;
}

/**
 * Derives the consistent-hash key of a request from the policy. Returns undefined when the
 * request has no value for the configured source (the balancer then picks at random, as Envoy
 * does), except for `httpCookie` with a `ttl`, which generates a value and asks for it to be set.
 * `random` fills generated cookie values (defaults to crypto random bytes).
 */
export function hashKeyFor(
  policy: ConsistentHashConfig,
  req: HashRequest,
  random: (bytes: number) => Buffer = randomBytes,
): HashKeyResult | undefined {
  if (policy.httpHeaderName !== undefined) {
    const v = header(req.headers, policy.httpHeaderName);
    return v === undefined ? undefined : { key: v };
  }
  if (policy.httpCookie !== undefined) {
    const { name, path, ttl, attributes } = policy.httpCookie;
    const v = cookie(header(req.headers, 'cookie'), name);
    if (v !== undefined) return { key: v };
    // As Envoy: without a ttl no cookie is generated (the request is balanced without a key).
    if (ttl === undefined) return undefined;
    const value = random(16).toString('hex');
    let setCookie = `${name}=${value}; Path=${path ?? '/'}; HttpOnly`;
    // As Envoy: a ttl of 0 makes a session cookie (no Max-Age).
    if (ttl > 0) setCookie += `; Max-Age=${Math.max(1, Math.round(ttl / 1000))}`;
    for (const a of attributes ?? [])
      setCookie += a.value === undefined ? `; ${a.name}` : `; ${a.name}=${a.value}`;
    return { key: value, setCookie };
  }
  if (policy.httpQueryParameterName !== undefined) {
    const q = req.path.indexOf('?');
    if (q < 0) return undefined;
    const hash = req.path.indexOf('#', q);
    const params = new URLSearchParams(req.path.slice(q + 1, hash < 0 ? undefined : hash));
    const v = params.get(policy.httpQueryParameterName);
    return v === null ? undefined : { key: v };
  }
  if (policy.contextKey !== undefined) {
    const v = req.context?.[policy.contextKey] ?? header(req.headers, policy.contextKey);
    return v === undefined ? undefined : { key: v };
  }
  if (policy.useSourceIp) {
    return req.sourceIp === undefined ? undefined : { key: req.sourceIp };
  }
  return undefined;
}

function header(headers: HashRequest['headers'], name: string): string | undefined {
  const lower = name.toLowerCase();
  let v = headers[lower];
  if (v === undefined) {
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === lower) {
        v = headers[k];
        break;
      }
    }
  }
  if (v === undefined) return undefined;
  // Several cookie headers join with "; ", other repeated headers with ", " (RFC 9110 5.3).
  return Array.isArray(v) ? v.join(lower === 'cookie' ? '; ' : ', ') : v;
}

function cookie(cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader === undefined) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let v = part.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    return v;
  }
  return undefined;
}

let ownAddress: string | undefined;

/**
 * This host's address as an Istio sidecar would see it as the source of its outbound calls: the
 * first non-internal IPv4 address (else IPv6) of its interfaces, or its host name when it has none.
 * Read once per process.
 */
export function sourceAddress(): string {
  if (ownAddress !== undefined) return ownAddress;
  let v6: string | undefined;
  try {
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) {
        if (a.internal) continue;
        if (a.family === 'IPv4') {
          ownAddress = a.address;
          return ownAddress;
        }
        v6 ??= a.address;
      }
    }
  } catch {
    // No interface list (a sandbox): the host name below.
  }
  ownAddress = v6 ?? hostname();
  return ownAddress;
}
