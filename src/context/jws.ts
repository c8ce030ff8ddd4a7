/**
 * The gateway's signed context: a compact JWS (RFC 7515) whose payload is a JWT claims set,
 * verified with `jose` (WebCrypto, hence async) behind a strict syntax check and a small cache.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { type CryptoKey, errors, type JWTPayload, type JWTVerifyOptions, jwtVerify, SignJWT } from 'jose';

export type JwsAlgorithm = 'HS256' | 'ES256';

export interface JwsKeys {
  hmacSecret?: string | undefined;
  publicKey?: KeyObject | undefined;
  algorithms: readonly JwsAlgorithm[];
  /** Allowed clock skew on exp/nbf, in ms. */
  skewMs: number;
  /** When set, the token's `aud` must hold one of these. */
  audience?: string | readonly string[] | undefined;
  /** When set, the token's `iss` must be one of these. */
  issuer?: string | readonly string[] | undefined;
}

export type JwsResult =
  | { readonly ok: true; readonly claims: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly reason: string };

/** Verified tokens kept by default, each until its `exp`. */
export const DEFAULT_TOKEN_CACHE_SIZE = 1024;

/** Reads a PEM public key for ES256; refuses anything but an EC P-256 public key. */
export function loadPublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new Error(`ES256 needs an EC P-256 public key, not ${describeKey(key)}`);
  return key;
}

function describeKey(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return `${key.asymmetricKeyType ?? key.type}${curve ? ` (${curve})` : ''}`;
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * True when `part` is canonical unpadded base64url: only the URL-safe alphabet, a length that
 * encodes whole bytes, and zero unused bits in the last character. jose decodes with the
 * forgiving decoder (`atob`) where `Uint8Array.fromBase64` is missing, which ignores whitespace,
 * `=` padding and the unused bits: without this check, many spellings of one signature verify.
 */
function canonicalBase64url(part: string): boolean {
  if (!B64URL.test(part)) return false;
  const rest = part.length % 4;
  if (rest === 0) return true;
  if (rest === 1) return false;
  const last = B64URL_ALPHABET.indexOf(part[part.length - 1] as string);
  return (last & (rest === 2 ? 0x0f : 0x03)) === 0;
}

/** Strict compact serialization: three canonical base64url parts (none empty). */
export function wellFormed(token: string): boolean {
  const a = token.indexOf('.');
  const b = a === -1 ? -1 : token.indexOf('.', a + 1);
  if (b === -1 || token.indexOf('.', b + 1) !== -1) return false;
  return (
    canonicalBase64url(token.slice(0, a)) &&
    canonicalBase64url(token.slice(a + 1, b)) &&
    canonicalBase64url(token.slice(b + 1))
  );
}

interface Cached {
  result: JwsResult & { ok: true };
  exp: number;
  nbf: number | undefined;
}

/**
 * Verifies the gateway's tokens for one configuration. `verify` is async (WebCrypto); a token
 * accepted before is answered synchronously by `cached` until its `exp`, from a bounded LRU keyed
 * by the exact token string. Refusals are never cached. Neither method throws nor rejects.
 */
export class JwsVerifier {
  readonly #keys: JwsKeys;
  readonly #options: JWTVerifyOptions;
  readonly #skewS: number;
  readonly #max: number;
  readonly #cache = new Map<string, Cached>();
  #hmac: Promise<CryptoKey> | undefined;

  constructor(keys: JwsKeys, opts: { cacheSize?: number } = {}) {
    this.#keys = keys;
    this.#skewS = keys.skewMs / 1000;
    this.#max = opts.cacheSize ?? DEFAULT_TOKEN_CACHE_SIZE;
    this.#options = {
      algorithms: [...keys.algorithms],
      requiredClaims: ['exp'],
      clockTolerance: this.#skewS,
      ...(keys.audience !== undefined ? { audience: keys.audience as string | string[] } : {}),
      ...(keys.issuer !== undefined ? { issuer: keys.issuer as string | string[] } : {}),
    };
  }

  /** Tokens held by the cache. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** The answer for a token accepted before and still within its exp/nbf; otherwise undefined. */
  cached(token: string, nowMs: number): JwsResult | undefined {
    const hit = this.#cache.get(token);
    if (hit === undefined) return undefined;
    const now = Math.floor(nowMs / 1000);
    if (hit.exp <= now - this.#skewS || (hit.nbf !== undefined && hit.nbf > now + this.#skewS)) {
      this.#cache.delete(token);
      return undefined;
    }
    // Most recently used last: eviction takes the first key.
    this.#cache.delete(token);
    this.#cache.set(token, hit);
    return hit.result;
  }

  /** Verifies a token completely (signature, algorithm, crit, exp, nbf, aud, iss). Never rejects. */
  async verify(token: string, nowMs: number): Promise<JwsResult> {
    if (!wellFormed(token)) return { ok: false, reason: 'malformed JWS' };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, (header) => this.#key(header.alg), {
        ...this.#options,
        currentDate: new Date(nowMs),
      }));
    } catch (err) {
      return { ok: false, reason: reason(err, token) };
    }
    const result = { ok: true as const, claims: Object.freeze({ ...payload }) };
    if (this.#max > 0) {
      if (this.#cache.size >= this.#max) this.#cache.delete(this.#cache.keys().next().value as string);
      this.#cache.set(token, { result, exp: payload.exp as number, nbf: payload.nbf });
    }
    return result;
  }

  /** The key for the header's algorithm (already allowed by jose): HMAC secret or EC public key. */
  #key(alg: string | undefined): Promise<CryptoKey> | KeyObject {
    if (alg === 'ES256' && this.#keys.publicKey) return this.#keys.publicKey;
    if (alg === 'HS256' && this.#keys.hmacSecret !== undefined) {
      this.#hmac ??= crypto.subtle.importKey(
        'raw',
        new TextEncoder().encode(this.#keys.hmacSecret),
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['verify'],
      );
      return this.#hmac;
    }
    throw new errors.JOSEAlgNotAllowed(`no key for algorithm ${JSON.stringify(alg)}`);
  }
}

/** A short reason for the log and the tests, from jose's error. */
function reason(err: unknown, token: string): string {
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'exp') return err.reason === 'missing' ? 'no exp claim' : 'invalid exp claim';
    if (err.claim === 'nbf') return err.reason === 'check_failed' ? 'not valid yet' : 'invalid nbf claim';
    if (err.claim === 'aud') return 'wrong audience';
    if (err.claim === 'iss') return 'wrong issuer';
    return `invalid ${err.claim} claim`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof errors.JOSEAlgNotAllowed)
    return `algorithm ${JSON.stringify(headerAlg(token))} is not accepted`;
  return 'malformed JWS';
}

function headerAlg(token: string): unknown {
  try {
    return (
      JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as {
        alg?: unknown;
      }
    ).alg;
  } catch {
    return undefined;
  }
}

/**
 * Signs a compact JWS whose payload is `claims` (header `{ alg, typ: "JWT" }`). HS256 takes the
 * shared secret, ES256 a P-256 private KeyObject. For tests and for a gateway written with meshwork.
 */
export async function signJws(
  claims: Record<string, unknown>,
  alg: JwsAlgorithm,
  key: string | KeyObject,
): Promise<string> {
  const k = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  return new SignJWT(claims as JWTPayload).setProtectedHeader({ alg, typ: 'JWT' }).sign(k);
}

/** One verification with a fresh verifier (no cache): for tests and one-off checks. */
export function verifyJws(token: string, keys: JwsKeys, nowMs: number): Promise<JwsResult> {
  return new JwsVerifier(keys, { cacheSize: 0 }).verify(token, nowMs);
}
