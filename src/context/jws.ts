import { createHmac, createPublicKey, type KeyObject, sign, timingSafeEqual, verify } from 'node:crypto';

export type JwsAlgorithm = 'HS256' | 'ES256';

export interface JwsKeys {
  hmacSecret?: string | undefined;
  publicKey?: KeyObject | undefined;
  algorithms: readonly JwsAlgorithm[];
  /** Allowed clock skew on exp/nbf, in ms. */
  skewMs: number;
}

export type JwsResult = { ok: true; claims: Record<string, unknown> } | { ok: false; reason: string };

function b64json(part: string): unknown {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

export function loadPublicKey(pem: string): KeyObject {
  return createPublicKey(pem);
}

/**
 * Verifies a compact JWS (RFC 7515) signed with HS256 or ES256 and checks its `exp` (required)
 * and `nbf` against `nowMs` (wall clock) with the allowed skew. `alg: none` is never accepted.
 */
export function verifyJws(token: string, keys: JwsKeys, nowMs: number): JwsResult {
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'not a compact JWS' };
  const [h, p, s] = parts as [string, string, string];
  let header: { alg?: unknown };
  let claims: Record<string, unknown>;
  try {
    header = b64json(h) as { alg?: unknown };
    claims = b64json(p) as Record<string, unknown>;
  } catch {
    return { ok: false, reason: 'malformed JWS' };
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims))
    return { ok: false, reason: 'claims are not an object' };
  const alg = header?.alg;
  if (typeof alg !== 'string' || !keys.algorithms.includes(alg as JwsAlgorithm)) {
    return { ok: false, reason: `algorithm ${JSON.stringify(alg)} is not accepted` };
  }
  const signed = Buffer.from(`${h}.${p}`);
  const sig = Buffer.from(s, 'base64url');
  let valid = false;
  if (alg === 'HS256' && keys.hmacSecret) {
    const mac = createHmac('sha256', keys.hmacSecret).update(signed).digest();
    valid = mac.length === sig.length && timingSafeEqual(mac, sig);
  } else if (alg === 'ES256' && keys.publicKey) {
    try {
      valid =
        sig.length === 64 &&
        verify('sha256', signed, { key: keys.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
    } catch {
      valid = false;
    }
  }
  if (!valid) return { ok: false, reason: 'bad signature' };
  const now = nowMs / 1000;
  const skew = keys.skewMs / 1000;
  if (typeof claims.exp !== 'number') return { ok: false, reason: 'no exp claim' };
  if (now > claims.exp + skew) return { ok: false, reason: 'expired' };
  if (typeof claims.nbf === 'number' && now < claims.nbf - skew)
    return { ok: false, reason: 'not valid yet' };
  return { ok: true, claims };
}

/** Signs a compact JWS. Used by tests and by a gateway written with meshwork. */
export function signJws(claims: Record<string, unknown>, alg: JwsAlgorithm, key: string | KeyObject): string {
  const h = Buffer.from(JSON.stringify({ alg, typ: 'JWT' })).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const data = Buffer.from(`${h}.${p}`);
  let sig: Buffer;
  if (alg === 'HS256')
    sig = createHmac('sha256', key as string)
      .update(data)
      .digest();
  else sig = sign('sha256', data, { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  return `${h}.${p}.${sig.toString('base64url')}`;
}
