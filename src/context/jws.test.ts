import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signJws, verifyJws } from './jws.ts';

const SECRET = 'sixteen-chars-or-more';
const NOW = 1_700_000_000_000;
const keys = { hmacSecret: SECRET, algorithms: ['HS256' as const], skewMs: 30_000 };

describe('verifyJws', () => {
  it('accepts a valid HS256 token and returns its claims', () => {
    const t = signJws({ a: 1, exp: NOW / 1000 + 10 }, 'HS256', SECRET);
    expect(verifyJws(t, keys, NOW)).toEqual({ ok: true, claims: { a: 1, exp: NOW / 1000 + 10 } });
  });
  it('exp is required; exp and nbf allow the skew', () => {
    expect(verifyJws(signJws({}, 'HS256', SECRET), keys, NOW)).toMatchObject({
      ok: false,
      reason: 'no exp claim',
    });
    expect(verifyJws(signJws({ exp: NOW / 1000 - 20 }, 'HS256', SECRET), keys, NOW).ok).toBe(true);
    expect(verifyJws(signJws({ exp: NOW / 1000 - 40 }, 'HS256', SECRET), keys, NOW)).toMatchObject({
      reason: 'expired',
    });
    expect(
      verifyJws(signJws({ exp: NOW / 1000 + 99, nbf: NOW / 1000 + 20 }, 'HS256', SECRET), keys, NOW).ok,
    ).toBe(true);
    expect(
      verifyJws(signJws({ exp: NOW / 1000 + 99, nbf: NOW / 1000 + 40 }, 'HS256', SECRET), keys, NOW),
    ).toMatchObject({
      reason: 'not valid yet',
    });
  });
  it('refuses algorithms not listed (none, ES256 without a key)', () => {
    const t = signJws({ exp: NOW / 1000 + 10 }, 'HS256', SECRET);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${t.split('.')[1]}.`;
    expect(verifyJws(none, keys, NOW)).toMatchObject({ ok: false });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(verifyJws(signJws({ exp: NOW / 1000 + 10 }, 'ES256', privateKey), keys, NOW)).toMatchObject({
      ok: false,
    });
  });
  it('ES256 with a public key; a signature from another key fails', () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const k = { publicKey: a.publicKey, algorithms: ['ES256' as const], skewMs: 0 };
    expect(verifyJws(signJws({ exp: NOW / 1000 + 10 }, 'ES256', a.privateKey), k, NOW).ok).toBe(true);
    expect(verifyJws(signJws({ exp: NOW / 1000 + 10 }, 'ES256', b.privateKey), k, NOW)).toMatchObject({
      reason: 'bad signature',
    });
  });
  it('malformed input', () => {
    expect(verifyJws('a.b', keys, NOW).ok).toBe(false);
    expect(verifyJws('!!.??.x', keys, NOW).ok).toBe(false);
    expect(
      verifyJws(
        `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from('[1]').toString('base64url')}.x`,
        keys,
        NOW,
      ).ok,
    ).toBe(false);
  });
});
