/**
 * The JWT a caller presents to be identified (`credentials: [{ jwt }]`) or counted by a claim
 * (`key: { claim }`), verified with jose: an HMAC secret, a PEM public key, or a JWKS URL (jose
 * fetches and caches it). `exp` is required. The token's compact syntax is checked strictly first
 * (the same check as the gateway context's tokens), and accepted tokens are remembered until
 * their `exp` in a bounded LRU, so a token seen again costs a map lookup.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { wellFormed } from '../context/jws.ts';
import { MeshworkConfigError } from '../errors.ts';
import type { JwtConfig } from './schema.ts';

export type JwtResult =
  | { readonly ok: true; readonly claims: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly reason: string };

const CACHE_SIZE = 4096;
const JWKS_TIMEOUT_MS = 2_000;
const DEFAULT_SKEW_MS = 30_000;

function algorithmsFor(key: KeyObject): string[] {
  const t = key.asymmetricKeyType;
  if (t === 'rsa') return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
  if (t === 'rsa-pss') return ['PS256', 'PS384', 'PS512'];
  if (t === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return ['ES256'];
    if (curve === 'secp384r1') return ['ES384'];
  }
  if (t === 'ed25519') return ['EdDSA'];
  throw new Error(`unsupported public key type ${t ?? key.type}`);
}

export class JwtVerifier {
  readonly header: string;
  readonly #key: Uint8Array | KeyObject | JWTVerifyGetKey;
  readonly #algorithms: string[];
  readonly #issuer: string | string[] | undefined;
  readonly #audience: string | string[] | undefined;
  readonly #skewS: number;
  readonly #cache = new Map<
    string,
    { claims: Readonly<Record<string, unknown>>; exp: number; nbf: number }
  >();
  /** Injectable wall clock (ms). */
  wallClock: () => number = Date.now;

  constructor(cfg: JwtConfig, path: string) {
    this.header = cfg.header ?? 'authorization';
    this.#issuer = cfg.issuer as string | string[] | undefined;
    this.#audience = cfg.audience as string | string[] | undefined;
    this.#skewS = (cfg.clockSkew ?? DEFAULT_SKEW_MS) / 1000;
    let defaults: string[];
    if (cfg.hmacSecret !== undefined) {
      this.#key = new TextEncoder().encode(cfg.hmacSecret);
      defaults = ['HS256'];
    } else if (cfg.publicKey !== undefined) {
      try {
        const pem = cfg.publicKey;
        const key = createPublicKey(pem);
        defaults = algorithmsFor(key);
        this.#key = key;
      } catch (err) {
        throw new MeshworkConfigError([
          {
            path: `${path}.publicKey`,
            message: `is not a usable PEM public key (${(err as Error).message})`,
          },
        ]);
      }
    } else {
      this.#key = createRemoteJWKSet(new URL(cfg.jwksUri as string), {
        timeoutDuration: JWKS_TIMEOUT_MS,
        cooldownDuration: 30_000,
      });
      defaults = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
    }
    this.#algorithms = cfg.algorithms ? [...cfg.algorithms] : defaults;
    const hmac = this.#algorithms.some((a) => a.startsWith('HS'));
    if (hmac !== (cfg.hmacSecret !== undefined))
      throw new MeshworkConfigError([
        {
          path: `${path}.algorithms`,
          message: hmac
            ? 'HS* algorithms need hmacSecret (a public key must never be used as an HMAC secret)'
            : 'hmacSecret needs HS256, HS384 or HS512',
        },
      ]);
  }

  /**
   * The token of a request, or undefined when it carries none: the header's value, without a
   * `Bearer ` prefix. A value of another scheme (`Basic …`) is not a JWT: undefined.
   */
  token(value: string | undefined): string | undefined {
    if (value === undefined || value === '') return undefined;
    const sp = value.indexOf(' ');
    if (sp < 0) return value;
    if (value.slice(0, sp).toLowerCase() !== 'bearer') return undefined;
    return value.slice(sp + 1).trim();
  }

  /** A token verified before and still valid: its claims; otherwise undefined. */
  cached(token: string): Readonly<Record<string, unknown>> | undefined {
    const hit = this.#cache.get(token);
    if (hit === undefined) return undefined;
    const now = this.wallClock() / 1000;
    if (hit.exp <= now - this.#skewS || hit.nbf > now + this.#skewS) {
      this.#cache.delete(token);
      return undefined;
    }
    return hit.claims;
  }

  /** Verifies completely (syntax, algorithm, signature, exp, nbf, iss, aud). Never rejects. */
  async verify(token: string): Promise<JwtResult> {
    if (token.length > 16_384 || !wellFormed(token)) return { ok: false, reason: 'malformed JWT' };
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#key as KeyObject, {
        algorithms: this.#algorithms,
        requiredClaims: ['exp'],
        clockTolerance: this.#skewS,
        currentDate: new Date(this.wallClock()),
        ...(this.#issuer !== undefined ? { issuer: this.#issuer } : {}),
        ...(this.#audience !== undefined ? { audience: this.#audience } : {}),
      }));
    } catch (err) {
      return { ok: false, reason: reason(err) };
    }
    const claims = Object.freeze({ ...payload });
    if (this.#cache.size >= CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(token, { claims, exp: payload.exp as number, nbf: payload.nbf ?? 0 });
    return { ok: true, claims };
  }
}

function reason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'exp') return 'no valid exp claim';
    if (err.claim === 'nbf') return 'not valid yet';
    if (err.claim === 'aud') return 'wrong audience';
    if (err.claim === 'iss') return 'wrong issuer';
    return `invalid ${err.claim} claim`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not accepted';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no matching key in the JWKS';
  if (err instanceof errors.JWKSTimeout) return 'the JWKS did not answer in time';
  return 'malformed JWT';
}
