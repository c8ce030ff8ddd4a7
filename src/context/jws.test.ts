import { createHmac, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type JwsKeys, JwsVerifier, loadPublicKey, signJws, verifyJws } from './jws.ts';

const SECRET = 'sixteen-chars-or-more';
const NOW = 1_700_000_000_000;
const EXP = NOW / 1000 + 10;
const keys: JwsKeys = { hmacSecret: SECRET, algorithms: ['HS256'], skewMs: 30_000 };

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Signs any header with HS256 using node:crypto directly, independently of the code under test. */
function hs256(header: Record<string, unknown>, claims: Record<string, unknown>, secret = SECRET): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** A valid token whose signature holds a `-` or `_`, so its standard-base64 spelling differs. */
function tokenWithUrlSafeChars(): string {
  for (let i = 0; ; i++) {
    const t = hs256({ alg: 'HS256', typ: 'JWT' }, { i, exp: EXP });
    if (/[-_]/.test(t.split('.')[2] as string)) return t;
  }
}

describe('verifyJws', () => {
  it('accepts a valid HS256 token and returns its claims', async () => {
    const t = await signJws({ a: 1, exp: EXP }, 'HS256', SECRET);
    expect(await verifyJws(t, keys, NOW)).toEqual({ ok: true, claims: { a: 1, exp: EXP } });
    expect(await verifyJws(hs256({ alg: 'HS256' }, { a: 2, exp: EXP }), keys, NOW)).toMatchObject({
      ok: true,
    });
  });

  it('exp is required; exp and nbf allow the skew', async () => {
    const v = async (claims: Record<string, unknown>) =>
      verifyJws(await signJws(claims, 'HS256', SECRET), keys, NOW);
    expect(await v({})).toMatchObject({ ok: false, reason: 'no exp claim' });
    expect((await v({ exp: NOW / 1000 - 20 })).ok).toBe(true);
    expect(await v({ exp: NOW / 1000 - 40 })).toMatchObject({ reason: 'expired' });
    expect((await v({ exp: NOW / 1000 + 99, nbf: NOW / 1000 + 20 })).ok).toBe(true);
    expect(await v({ exp: NOW / 1000 + 99, nbf: NOW / 1000 + 40 })).toMatchObject({
      reason: 'not valid yet',
    });
    expect(await v({ exp: 'tomorrow' })).toMatchObject({ ok: false });
  });

  it('refuses algorithms not listed (none, ES256 without a key)', async () => {
    const t = await signJws({ exp: EXP }, 'HS256', SECRET);
    const none = `${b64({ alg: 'none' })}.${t.split('.')[1]}.`;
    expect(await verifyJws(none, keys, NOW)).toMatchObject({ ok: false });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(await verifyJws(await signJws({ exp: EXP }, 'ES256', privateKey), keys, NOW)).toMatchObject({
      ok: false,
    });
  });

  it('ES256 with a public key; a signature from another key fails; an HS256 token signed with the public key fails', async () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const k: JwsKeys = { publicKey: a.publicKey, algorithms: ['ES256'], skewMs: 0 };
    expect((await verifyJws(await signJws({ exp: EXP }, 'ES256', a.privateKey), k, NOW)).ok).toBe(true);
    expect(await verifyJws(await signJws({ exp: EXP }, 'ES256', b.privateKey), k, NOW)).toMatchObject({
      reason: 'bad signature',
    });
    // Algorithm confusion: the public key used as an HMAC secret.
    const pem = a.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const both: JwsKeys = {
      publicKey: a.publicKey,
      hmacSecret: SECRET,
      algorithms: ['ES256', 'HS256'],
      skewMs: 0,
    };
    expect((await verifyJws(hs256({ alg: 'HS256' }, { exp: EXP }, pem), both, NOW)).ok).toBe(false);
    expect((await verifyJws(hs256({ alg: 'HS256' }, { exp: EXP }), both, NOW)).ok).toBe(true);
    expect((await verifyJws(await signJws({ exp: EXP }, 'ES256', a.privateKey), both, NOW)).ok).toBe(true);
  });

  it('loadPublicKey takes an EC P-256 public key only', () => {
    const pem = (k: ReturnType<typeof generateKeyPairSync>['publicKey']) =>
      k.export({ type: 'spki', format: 'pem' }) as string;
    expect(loadPublicKey(pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)).type).toBe(
      'public',
    );
    expect(() => loadPublicKey(pem(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey))).toThrow(
      /P-256.*secp384r1/,
    );
    expect(() => loadPublicKey(pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey))).toThrow(
      /not rsa/,
    );
  });

  it('malformed input', async () => {
    for (const t of ['', 'a.b', '!!.??.x', 'a.b.c.d', `${b64({ alg: 'HS256' })}.${b64([1])}.x`, '...'])
      expect((await verifyJws(t, keys, NOW)).ok).toBe(false);
    // Claims that are not an object, correctly signed.
    expect((await verifyJws(hs256({ alg: 'HS256' }, [1] as never), keys, NOW)).ok).toBe(false);
  });

  it('refuses a signature with junk appended, padded, with whitespace, or in standard base64', async () => {
    const t = tokenWithUrlSafeChars();
    expect((await verifyJws(t, keys, NOW)).ok).toBe(true);
    const [h, p, s] = t.split('.') as [string, string, string];
    const std = Buffer.from(s, 'base64url').toString('base64');
    for (const bad of [
      `${t}junk`,
      `${t}!!`,
      `${t}=`,
      `${t} `,
      `${t}\n`,
      `${h}.${p}.${s.slice(0, 8)} ${s.slice(8)}`,
      `${h}.${p}.${std}`,
      `${h}.${p}.${std.replace(/=+$/, '')}`,
      ` ${t}`,
      `${h}=.${p}.${s}`,
    ])
      expect(await verifyJws(bad, keys, NOW), JSON.stringify(bad)).toMatchObject({ ok: false });
  });

  it('refuses a signature whose last character differs only in its unused bits (non-canonical base64url)', async () => {
    const t = await signJws({ exp: EXP }, 'HS256', SECRET);
    const [h, p, s] = t.split('.') as [string, string, string];
    // 32 bytes = 43 characters: the last one carries 4 bits of data and 2 unused bits.
    const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = A.indexOf(s.at(-1) as string);
    for (const unused of [1, 2, 3]) {
      const mutated = `${h}.${p}.${s.slice(0, -1)}${A[last ^ unused]}`;
      expect(Buffer.from(mutated.split('.')[2] as string, 'base64url')).toEqual(Buffer.from(s, 'base64url'));
      expect((await verifyJws(mutated, keys, NOW)).ok).toBe(false);
    }
  });

  it('refuses a token with a crit header parameter it does not understand (RFC 7515 4.1.11)', async () => {
    const t = hs256({ alg: 'HS256', crit: ['x-policy'], 'x-policy': 'must-check' }, { exp: EXP });
    expect(await verifyJws(t, keys, NOW)).toMatchObject({ ok: false, reason: 'malformed JWS' });
    // b64: false (unencoded payload) is not allowed in a JWT either.
    const u = hs256({ alg: 'HS256', crit: ['b64'], b64: false }, { exp: EXP });
    expect((await verifyJws(u, keys, NOW)).ok).toBe(false);
    // An empty or malformed crit.
    expect((await verifyJws(hs256({ alg: 'HS256', crit: [] }, { exp: EXP }), keys, NOW)).ok).toBe(false);
    expect((await verifyJws(hs256({ alg: 'HS256', crit: 'x' }, { exp: EXP }), keys, NOW)).ok).toBe(false);
  });

  it('checks aud and iss when configured', async () => {
    const k: JwsKeys = { ...keys, audience: ['travels', 'portal'], issuer: 'https://gateway.example' };
    const ok = { exp: EXP, aud: 'travels', iss: 'https://gateway.example' };
    expect((await verifyJws(hs256({ alg: 'HS256' }, ok), k, NOW)).ok).toBe(true);
    expect((await verifyJws(hs256({ alg: 'HS256' }, { ...ok, aud: ['x', 'portal'] }), k, NOW)).ok).toBe(true);
    expect(await verifyJws(hs256({ alg: 'HS256' }, { ...ok, aud: 'reviews' }), k, NOW)).toMatchObject({
      ok: false,
      reason: 'wrong audience',
    });
    expect(await verifyJws(hs256({ alg: 'HS256' }, { exp: EXP, iss: ok.iss }), k, NOW)).toMatchObject({
      reason: 'wrong audience',
    });
    expect(await verifyJws(hs256({ alg: 'HS256' }, { ...ok, iss: 'https://evil' }), k, NOW)).toMatchObject({
      ok: false,
      reason: 'wrong issuer',
    });
    expect(await verifyJws(hs256({ alg: 'HS256' }, { exp: EXP, aud: 'travels' }), k, NOW)).toMatchObject({
      reason: 'wrong issuer',
    });
    // Without the options, aud and iss are not checked.
    expect((await verifyJws(hs256({ alg: 'HS256' }, { ...ok, aud: 'reviews' }), keys, NOW)).ok).toBe(true);
  });

  it('never rejects (throws) whatever the input', async () => {
    for (const t of [
      'a.b.c',
      `${b64('str')}.${b64({})}.x`,
      `${b64({ alg: 'HS256' })}.${b64(null)}.${'A'.repeat(43)}`,
      `${b64({ alg: ['HS256'] })}.${b64({ exp: EXP })}.x`,
      `${b64({ alg: 'HS256', crit: [1] })}.${b64({ exp: EXP })}.x`,
      `${Buffer.from('\u00ff\u00fe').toString('base64url')}.x.x`,
      'x'.repeat(100_000),
    ])
      await expect(verifyJws(t, keys, NOW)).resolves.toMatchObject({ ok: false });
  });
});

describe('JwsVerifier cache', () => {
  it('answers a token verified before from its cache, until exp (with the skew); never caches a refusal', async () => {
    const v = new JwsVerifier({ ...keys, skewMs: 0 }, { cacheSize: 2 });
    const t = await signJws({ a: 1, exp: EXP }, 'HS256', SECRET);
    expect(v.cached(t, NOW)).toBeUndefined();
    expect((await v.verify(t, NOW)).ok).toBe(true);
    expect(v.cached(t, NOW)).toEqual({ ok: true, claims: { a: 1, exp: EXP } });
    // Expired: no longer answered from the cache, and refused by a full verification.
    expect(v.cached(t, (EXP + 1) * 1000)).toBeUndefined();
    expect(await v.verify(t, (EXP + 1) * 1000)).toMatchObject({ ok: false, reason: 'expired' });
    const bad = `${t}x`;
    await v.verify(bad, NOW);
    expect(v.cached(bad, NOW)).toBeUndefined();
  });

  it('is bounded: the least recently used token goes first', async () => {
    const v = new JwsVerifier(keys, { cacheSize: 2 });
    const [a, b, c] = await Promise.all([1, 2, 3].map((i) => signJws({ i, exp: EXP }, 'HS256', SECRET)));
    for (const t of [a, b]) await v.verify(t as string, NOW);
    expect(v.cached(a as string, NOW)?.ok).toBe(true); // a is now the most recent
    await v.verify(c as string, NOW);
    expect(v.cached(b as string, NOW)).toBeUndefined();
    expect(v.cached(a as string, NOW)?.ok).toBe(true);
    expect(v.cached(c as string, NOW)?.ok).toBe(true);
    expect(v.cacheSize).toBe(2);
  });
});
