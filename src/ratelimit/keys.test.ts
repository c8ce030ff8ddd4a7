import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeKeyPart, queryParam, requestKey } from './keys.ts';

const req = (headers: Record<string, string | string[]>, path = '/') => ({
  method: 'GET',
  path,
  headers,
  ctx: { headers: { 'x-gateway-app': 'acme' }, principal: 'spiffe://cluster.local/ns/a/sa/b' },
  principal: 'spiffe://cluster.local/ns/a/sa/b',
});
const noId = { app: undefined, claims: undefined };

describe('counter keys', () => {
  it('plain short values are kept; anything else is hashed with a # no plain value has', () => {
    expect(encodeKeyPart('acme-travel')).toBe('acme-travel');
    expect(encodeKeyPart('spiffe://cluster.local/ns/a/sa/b')).toBe('spiffe://cluster.local/ns/a/sa/b');
    for (const odd of ['a b', 'a|b', '{tag}', 'x'.repeat(129), 'é', '\u0000', '#none', '\ud800'])
      expect(encodeKeyPart(odd)).toMatch(/^#[A-Za-z0-9_-]{32}$/);
  });

  it('two different values never share a key', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        fc.pre(a !== b);
        expect(encodeKeyPart(a)).not.toBe(encodeKeyPart(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('composite keys keep their parts apart', () => {
    const parts = [{ header: 'x-a' }, { header: 'x-b' }];
    const k1 = requestKey(parts, req({ 'x-a': 'a|b', 'x-b': 'c' }), noId);
    const k2 = requestKey(parts, req({ 'x-a': 'a', 'x-b': 'b|c' }), noId);
    expect(k1).not.toBe(k2);
    expect(requestKey(parts, req({ 'x-a': 'a' }), noId)).toBeUndefined();
  });

  it('reads headers (first value), context, principal, query, claims and the application', () => {
    expect(requestKey([{ header: 'x-a' }], req({ 'x-a': ['one', 'two'] }), noId)).toBe('one');
    expect(requestKey([{ context: 'x-gateway-app' }], req({}), noId)).toBe('acme');
    expect(requestKey([{ principal: true }], req({}), noId)).toBe('spiffe://cluster.local/ns/a/sa/b');
    expect(requestKey([{ query: 'api key' }], req({}, '/x?api+key=k%2F1&api key=2'), noId)).toBe('k/1');
    expect(requestKey([{ claim: 'sub' }], req({}), { app: undefined, claims: { sub: 'u1' } })).toBe('u1');
    expect(requestKey([{ claim: 'roles' }], req({}), { app: undefined, claims: { roles: ['a'] } })).toBe(
      encodeKeyPart('["a"]'),
    );
    expect(requestKey([{ application: true }], req({}), { app: 'acme', claims: undefined })).toBe('acme');
    expect(requestKey([{ header: 'x-a' }], req({ 'x-a': '' }), noId)).toBeUndefined();
  });

  it('query parameters decode like URLSearchParams, malformed escapes stay', () => {
    expect(queryParam('/p?a=1&b=%zz', 'b')).toBe('%zz');
    expect(queryParam('/p?a', 'a')).toBe('');
    expect(queryParam('/p', 'a')).toBeUndefined();
  });
});
