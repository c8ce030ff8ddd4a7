import { describe, expect, it } from 'vitest';
import { compileRoutes, type RouteRequest } from './match.ts';
import { type HttpRoute, httpRoutesSchema } from './schema.ts';

const to = (subset: string) => [{ destination: { subset } }];

function table(routes: unknown[]) {
  return compileRoutes(httpRoutesSchema.parse(routes));
}

function req(path: string, headers: RouteRequest['headers'] = {}, method = 'GET'): RouteRequest {
  return { method, path, headers };
}

const subsetOf = (hit: { route: HttpRoute } | undefined) => hit?.route.route?.[0]?.destination.subset;

describe('compileRoutes / match', () => {
  it('no routes: no match', () => {
    expect(compileRoutes([]).match(req('/'))).toBeUndefined();
    expect(compileRoutes(undefined).size).toBe(0);
  });

  it('first match wins; a route without match takes everything', () => {
    const t = table([
      { match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: to('v2') },
      { route: to('v1') },
    ]);
    expect(subsetOf(t.match(req('/', { 'end-user': 'jason' })))).toBe('v2');
    expect(subsetOf(t.match(req('/', { 'end-user': 'jasonx' })))).toBe('v1');
    expect(subsetOf(t.match(req('/')))).toBe('v1');
    const hit = t.match(req('/'));
    expect(hit?.index).toBe(1);
    expect(hit?.block).toBe(-1);
    // hits are precompiled: the same object each time
    expect(t.match(req('/x'))).toBe(hit);
  });

  it('uri exact, prefix, regex against the path without its query; ignoreUriCase for exact and prefix', () => {
    const t = table([
      { match: [{ uri: { exact: '/login' } }], route: to('exact') },
      { match: [{ uri: { prefix: '/api/' }, ignoreUriCase: true }], route: to('prefix') },
      { match: [{ uri: { regex: '/u/[0-9]+' }, ignoreUriCase: true }], route: to('regex') },
    ]);
    expect(subsetOf(t.match(req('/login?next=/x')))).toBe('exact');
    expect(subsetOf(t.match(req('/login/')))).toBeUndefined();
    expect(subsetOf(t.match(req('/LOGIN')))).toBeUndefined();
    expect(subsetOf(t.match(req('/API/v1?x')))).toBe('prefix');
    expect(t.match(req('/API/v1'))?.uriPrefix).toBe('/api/');
    expect(subsetOf(t.match(req('/u/42?q=1')))).toBe('regex');
    expect(subsetOf(t.match(req('/u/42/x')))).toBeUndefined(); // full match
    expect(subsetOf(t.match(req('/U/42')))).toBeUndefined(); // ignoreUriCase does not touch regexes
  });

  it('blocks are ORed, conditions ANDed', () => {
    const t = table([
      {
        match: [
          { uri: { prefix: '/a' }, method: { exact: 'POST' } },
          { headers: { 'x-b': { prefix: 'yes' } } },
        ],
        route: to('hit'),
      },
    ]);
    expect(t.match(req('/a', {}, 'POST'))?.block).toBe(0);
    expect(t.match(req('/a', {}, 'GET'))).toBeUndefined();
    expect(t.match(req('/z', { 'x-b': 'yes-please' }, 'GET'))?.block).toBe(1);
    expect(t.match(req('/z', { 'x-b': 'no' }, 'GET'))).toBeUndefined();
  });

  it('headers: exact/prefix/regex/presence, multi-values joined with ",", names lowercased', () => {
    const t = table([
      { match: [{ headers: { 'X-Tenant': { regex: 'acme|globex' } } }], route: to('regex') },
      { match: [{ headers: { 'x-list': { exact: 'a,b' } } }], route: to('joined') },
      { match: [{ headers: { 'x-gateway-route': {} } }], route: to('present') },
    ]);
    expect(subsetOf(t.match(req('/', { 'x-tenant': 'globex' })))).toBe('regex');
    expect(subsetOf(t.match(req('/', { 'x-tenant': 'globex-2' })))).toBeUndefined();
    expect(subsetOf(t.match(req('/', { 'x-list': ['a', 'b'] })))).toBe('joined');
    expect(subsetOf(t.match(req('/', { 'x-gateway-route': '' })))).toBe('present');
    expect(subsetOf(t.match(req('/', { 'x-gateway-route': undefined })))).toBeUndefined();
  });

  it('withoutHeaders: passes when the header is absent or does not match', () => {
    const t = table([
      { match: [{ withoutHeaders: { 'x-canary': { exact: 'off' }, 'x-debug': {} } }], route: to('canary') },
    ]);
    expect(subsetOf(t.match(req('/')))).toBe('canary');
    expect(subsetOf(t.match(req('/', { 'x-canary': 'on' })))).toBe('canary');
    expect(subsetOf(t.match(req('/', { 'x-canary': 'off' })))).toBeUndefined();
    expect(subsetOf(t.match(req('/', { 'x-debug': '1' })))).toBeUndefined();
  });

  it('queryParams: exact/prefix/regex/presence, decoded, first value', () => {
    const t = table([
      { match: [{ queryParams: { user: { exact: 'jane doe' }, v: { regex: '[0-9]+' } } }], route: to('q') },
      { match: [{ queryParams: { flag: {} } }], route: to('flag') },
      { match: [{ queryParams: { tab: { prefix: 'rev' } } }], route: to('prefix') },
    ]);
    expect(subsetOf(t.match(req('/p?user=jane%20doe&v=12')))).toBe('q');
    expect(subsetOf(t.match(req('/p?user=jane+doe&v=12&v=x')))).toBe('q');
    expect(subsetOf(t.match(req('/p?user=jane%20doe&v=1x')))).toBeUndefined();
    expect(subsetOf(t.match(req('/p?flag')))).toBe('flag');
    expect(subsetOf(t.match(req('/p?tab=reviews')))).toBe('prefix');
    expect(subsetOf(t.match(req('/p')))).toBeUndefined();
  });
});
