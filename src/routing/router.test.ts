import { describe, expect, it } from 'vitest';
import { applyRequestRoute, applyResponseRoute, compileRouter } from './router.ts';
import { httpRoutesSchema } from './schema.ts';

const router = compileRouter(
  httpRoutesSchema.parse([
    {
      match: [{ uri: { prefix: '/api/v1/' } }],
      rewrite: { uri: '/v2/', authority: 'reviews-internal' },
      headers: { request: { set: { 'x-route': 'api' } }, response: { remove: ['server'] } },
      route: [
        { destination: { subset: 'v1' }, weight: 80 },
        {
          destination: { subset: 'v2' },
          weight: 20,
          headers: { request: { set: { 'x-route': 'api-v2' } }, response: { add: { 'x-served-by': 'v2' } } },
        },
      ],
    },
    { route: [{ destination: { subset: 'v1' } }] },
  ]),
);

describe('compileRouter', () => {
  it('matches, picks, and rewrites in one call', () => {
    const headers: Record<string, string | string[]> = { host: 'reviews' };
    const d = router.route({ method: 'GET', path: '/api/v1/items?x=1', headers }, () => 0.9)!;
    expect(d.destination.destination.subset).toBe('v2');
    const path = applyRequestRoute(d, '/api/v1/items?x=1', headers);
    expect(path).toBe('/v2/items?x=1');
    // destination operations run after the route's, so they win
    expect(headers).toEqual({ host: 'reviews-internal', 'x-route': 'api-v2' });
    const res: Record<string, string | string[]> = { server: 'x', 'x-served-by': 'a' };
    applyResponseRoute(d, res);
    expect(res).toEqual({ 'x-served-by': ['a', 'v2'] });
  });

  it('shares decisions: routing a request allocates nothing', () => {
    const req = { method: 'GET', path: '/api/v1/x', headers: {} };
    expect(router.route(req, () => 0.1)).toBe(router.route(req, () => 0.2));
    expect(router.route(req, () => 0.1)).not.toBe(router.route(req, () => 0.95));
    expect(Object.isFrozen(router.route(req, () => 0.1))).toBe(true);
  });

  it('leaves unmatched parts alone and reports no route only when routes exist', () => {
    const headers: Record<string, string | string[]> = {};
    const d = router.route({ method: 'GET', path: '/other', headers })!;
    expect(d.hit.index).toBe(1);
    expect(applyRequestRoute(d, '/other', headers)).toBe('/other');
    expect(headers).toEqual({});
    const strict = compileRouter(
      httpRoutesSchema.parse([{ match: [{ uri: { exact: '/a' } }], route: [{ destination: {} }] }]),
    );
    expect(strict.route({ method: 'GET', path: '/b', headers: {} })).toBeUndefined();
    expect(compileRouter(undefined).size).toBe(0);
  });
});

describe('Router.normalize (the mesh pathNormalization, before matching)', () => {
  it('returns a canonical path as the same string; resolves tricks; keeps the query', () => {
    const p = '/api/v1/items/7?x=1';
    expect(router.normalize(p)).toBe(p);
    expect(router.normalize('/api/v1/../../admin?x=/../y')).toBe('/admin?x=/../y');
    expect(router.normalize('/api/%zz')).toMatchObject({ rejected: true });
  });
  it('follows the options it was compiled with', () => {
    const keep = compileRouter([], { normalization: 'BASE', escapedSlashes: 'KEEP_UNCHANGED' });
    expect(keep.normalize('/a//b%2fc')).toBe('/a//b%2Fc');
  });
});
