import { describe, expect, it } from 'vitest';
import { compileRoutes } from './match.ts';
import {
  applyHeaderOps,
  compileHeaderOps,
  type MutableHeaders,
  rewriteHitPath,
  rewritePath,
} from './mutate.ts';
import { httpRoutesSchema } from './schema.ts';

describe('header operations', () => {
  it('remove, then set, then add; names lowercased', () => {
    const ops = compileHeaderOps({
      remove: ['X-Remove', 'x-set'],
      set: { 'X-Set': 'new', 'x-fresh': '1' },
      add: { 'x-add': 'b', 'x-many': 'c', 'x-new': 'n' },
    });
    const h: MutableHeaders = {
      'x-remove': 'gone',
      'x-set': 'old',
      'x-add': 'a',
      'x-many': ['a', 'b'],
      keep: 'k',
    };
    applyHeaderOps(ops, h);
    expect(h).toEqual({
      'x-set': 'new',
      'x-fresh': '1',
      'x-add': ['a', 'b'],
      'x-many': ['a', 'b', 'c'],
      'x-new': 'n',
      keep: 'k',
    });
  });

  it('nothing to do compiles to undefined, and applying undefined is a no-op', () => {
    expect(compileHeaderOps(undefined)).toBeUndefined();
    expect(compileHeaderOps({ set: {}, remove: [] })).toBeUndefined();
    const h: MutableHeaders = { a: '1' };
    applyHeaderOps(undefined, h);
    expect(h).toEqual({ a: '1' });
  });

  it('add on a plain object (undici response headers) never reads an inherited member as a header', () => {
    const ops = compileHeaderOps({ add: { constructor: 'c' }, set: { tostring: 't' } });
    const h: MutableHeaders = {};
    applyHeaderOps(ops, h);
    expect(h).toEqual({ constructor: 'c', tostring: 't' });
    expect(Object.hasOwn(h, 'constructor')).toBe(true);
  });
});

describe('uri rewrite (Istio semantics)', () => {
  it('a prefix match replaces only the matched prefix and keeps the query', () => {
    expect(rewritePath('/old/x/y?q=1', '/new', '/old')).toBe('/new/x/y?q=1');
    expect(rewritePath('/old', '/new', '/old')).toBe('/new');
    expect(rewritePath('/reviews/1', '/', '/reviews/')).toBe('/1');
  });

  it('exact, regex or no uri condition: the whole path is replaced, the query kept', () => {
    expect(rewritePath('/a/b?x=1&y', '/c', undefined)).toBe('/c?x=1&y');
    expect(rewritePath('/a/b', '/c', undefined)).toBe('/c');
  });

  it('uses the block that matched', () => {
    const t = compileRoutes(
      httpRoutesSchema.parse([
        {
          match: [{ uri: { prefix: '/V1/' }, ignoreUriCase: true }, { uri: { regex: '/legacy/.*' } }],
          rewrite: { uri: '/v2/' },
          route: [{ destination: {} }],
        },
        { route: [{ destination: {} }] },
      ]),
    );
    expect(rewriteHitPath(t.match({ method: 'GET', path: '/v1/items?a', headers: {} })!, '/v1/items?a')).toBe(
      '/v2/items?a',
    );
    expect(rewriteHitPath(t.match({ method: 'GET', path: '/legacy/x', headers: {} })!, '/legacy/x')).toBe(
      '/v2/',
    );
    expect(rewriteHitPath(t.match({ method: 'GET', path: '/other', headers: {} })!, '/other')).toBe('/other');
  });
});
