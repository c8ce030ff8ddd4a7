/**
 * What a policy counts by, read from a request, and how a value becomes part of a counter key.
 * A value that is short and made of plain characters is used as is; anything else (long, odd
 * bytes, separators, braces) is replaced by a hash marked with `#`, which no plain value
 * starts with, so a crafted value can never land in the bucket of another one.
 */
import { createHash } from 'node:crypto';
import type { MeshContext } from '../context/store.ts';
import type { KeySource } from './schema.ts';

/** What the limiter reads from a request (inbound or outbound). Header names are lowercase. */
export interface LimitRequest {
  readonly method: string;
  /** The normalized path with its query string. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The gateway context: inbound, the one just read; outbound, the current request's. */
  readonly ctx: MeshContext | undefined;
  /** The caller's SPIFFE ID (verified mTLS peer), when any. */
  readonly principal: string | undefined;
}

/** Facts found while checking one request, shared by its policies. */
export interface Identity {
  /** The application the credentials identified. */
  app: string | undefined;
  /** Claims of the verified JWT, when one was presented and verified. */
  claims: Readonly<Record<string, unknown>> | undefined;
}

const SAFE = /^[A-Za-z0-9._~@+=:/-]{1,128}$/;

/** A value as it goes into a counter key: itself when plain and short, else `#` + a hash. */
export function encodeKeyPart(v: string): string {
  if (SAFE.test(v)) return v;
  // UTF-16 code units, so that lone surrogates (from a JSON claim) hash distinctly too.
  return `#${createHash('sha256').update(v, 'utf16le').digest('base64url').slice(0, 32)}`;
}

export function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The first value of query parameter `name` in `path` (decoded as URLSearchParams does). */
export function queryParam(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  let start = q + 1;
  while (start <= path.length) {
    let end = path.indexOf('&', start);
    if (end < 0) end = path.length;
    if (end > start) {
      const eq = path.indexOf('=', start);
      const split = eq >= 0 && eq < end;
      if (decode(path.slice(start, split ? eq : end)) === name)
        return split ? decode(path.slice(eq + 1, end)) : '';
    }
    start = end + 1;
  }
  return undefined;
}

function decode(s: string): string {
  if (s.indexOf('+') >= 0) s = s.replaceAll('+', ' ');
  if (s.indexOf('%') < 0) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The raw value of one key part, or undefined when the request has none (empty counts as none). */
export function readPart(part: KeySource, req: LimitRequest, id: Identity): string | undefined {
  let v: string | undefined;
  if (part.header !== undefined) v = firstValue(req.headers[part.header]);
  else if (part.context !== undefined) v = req.ctx?.headers[part.context];
  else if (part.principal) v = req.principal;
  else if (part.query !== undefined) v = queryParam(req.path, part.query);
  else if (part.claim !== undefined) {
    const c = id.claims?.[part.claim];
    v = c === undefined || c === null ? undefined : typeof c === 'string' ? c : JSON.stringify(c);
  } else if (part.application) v = id.app;
  return v === '' ? undefined : v;
}

/** The counter key of a request for these parts, or undefined when a part is missing. */
export function requestKey(parts: readonly KeySource[], req: LimitRequest, id: Identity): string | undefined {
  if (parts.length === 1) {
    const v = readPart(parts[0] as KeySource, req, id);
    return v === undefined ? undefined : encodeKeyPart(v);
  }
  let key = '';
  for (let i = 0; i < parts.length; i++) {
    const v = readPart(parts[i] as KeySource, req, id);
    if (v === undefined) return undefined;
    key += (i === 0 ? '' : '|') + encodeKeyPart(v);
  }
  return key;
}

/** The key of the one bucket shared by requests without a key (`missingKey: shared`). */
export const SHARED_KEY = '#none';
