import { describe, expect, it } from 'vitest';
import { hashKeyFor, sourceAddress } from './hash-key.ts';
import { consistentHashSchema } from './schema.ts';

const policy = (input: unknown) => consistentHashSchema.parse(input);
const fixedBytes = (n: number) => Buffer.alloc(n, 0xab);

describe('hashKeyFor', () => {
  it('reads a header, case-insensitively, joining repeated values', () => {
    const p = policy({ httpHeaderName: 'X-User' });
    expect(hashKeyFor(p, { headers: { 'x-user': 'ann' }, path: '/' })).toEqual({ key: 'ann' });
    expect(hashKeyFor(p, { headers: { 'X-User': ['a', 'b'] }, path: '/' })).toEqual({ key: 'a, b' });
    expect(hashKeyFor(p, { headers: {}, path: '/' })).toBeUndefined();
  });

  it('reads a cookie among others, unquoting it', () => {
    const p = policy({ httpCookie: { name: 'sid', ttl: '1h' } });
    expect(hashKeyFor(p, { headers: { cookie: 'a=1; sid=xyz; b=2' }, path: '/' })).toEqual({ key: 'xyz' });
    expect(hashKeyFor(p, { headers: { cookie: ['a=1', 'sid="q"'] }, path: '/' })).toEqual({ key: 'q' });
  });

  it('generates a missing cookie and returns the Set-Cookie value', () => {
    const p = policy({ httpCookie: { name: 'sid', path: '/app', ttl: '1h' } });
    const r = hashKeyFor(p, { headers: { cookie: 'other=1' }, path: '/' }, fixedBytes);
    const value = 'ab'.repeat(16);
    expect(r).toEqual({ key: value, setCookie: `sid=${value}; Path=/app; HttpOnly; Max-Age=3600` });
    // Session cookie when ttl is 0; random values otherwise differ.
    const s = hashKeyFor(policy({ httpCookie: { name: 'sid', ttl: 0 } }), { headers: {}, path: '/' });
    expect(s?.setCookie).toMatch(/^sid=[0-9a-f]{32}; Path=\/; HttpOnly$/);
    const t = hashKeyFor(policy({ httpCookie: { name: 'sid', ttl: 0 } }), { headers: {}, path: '/' });
    expect(t?.key).not.toBe(s?.key);
  });

  it('adds the cookie attributes to the generated cookie (Istio 1.24+ attributes)', () => {
    const p = policy({
      httpCookie: {
        name: 'sid',
        ttl: '1h',
        attributes: [{ name: 'SameSite', value: 'Strict' }, { name: 'Secure' }],
      },
    });
    expect(hashKeyFor(p, { headers: {}, path: '/' }, fixedBytes)?.setCookie).toBe(
      `sid=${'ab'.repeat(16)}; Path=/; HttpOnly; Max-Age=3600; SameSite=Strict; Secure`,
    );
  });

  it('without a ttl, a missing cookie is not generated (Envoy): no key, no Set-Cookie', () => {
    const p = policy({ httpCookie: { name: 'sid' } });
    expect(hashKeyFor(p, { headers: { cookie: 'sid=abc' }, path: '/' })).toEqual({ key: 'abc' });
    expect(hashKeyFor(p, { headers: {}, path: '/' }, fixedBytes)).toBeUndefined();
  });

  it('reads a query parameter', () => {
    const p = policy({ httpQueryParameterName: 'tenant' });
    expect(hashKeyFor(p, { headers: {}, path: '/x?a=1&tenant=acme%20co#frag' })).toEqual({ key: 'acme co' });
    expect(hashKeyFor(p, { headers: {}, path: '/x?a=1' })).toBeUndefined();
    expect(hashKeyFor(p, { headers: {}, path: '/x' })).toBeUndefined();
  });

  it('reads a gateway-context key from the context, else from the headers', () => {
    const p = policy({ contextKey: 'x-tenant-id' });
    expect(
      hashKeyFor(p, { headers: { 'x-tenant-id': 'h' }, path: '/', context: { 'x-tenant-id': 'c' } }),
    ).toEqual({
      key: 'c',
    });
    expect(hashKeyFor(p, { headers: { 'x-tenant-id': 'h' }, path: '/' })).toEqual({ key: 'h' });
  });

  it('uses the source IP', () => {
    const p = policy({ useSourceIp: true });
    expect(hashKeyFor(p, { headers: {}, path: '/', sourceIp: '10.1.2.3' })).toEqual({ key: '10.1.2.3' });
    expect(hashKeyFor(p, { headers: {}, path: '/' })).toBeUndefined();
  });

  it("sourceAddress is this host's own address, the same on every call", () => {
    const a = sourceAddress();
    expect(a.length).toBeGreaterThan(0);
    expect(a).not.toBe('127.0.0.1');
    expect(sourceAddress()).toBe(a);
  });
});
