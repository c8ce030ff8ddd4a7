import { describe, expect, it } from 'vitest';
import { authorize } from './authorization.ts';
import { authorizationSchema } from './schema.ts';

const policies = (p: unknown) => authorizationSchema.parse({ policies: p }).policies;
const req = (principal: string | undefined, method = 'GET', path = '/') => ({ principal, method, path });

describe('authorize (Istio AuthorizationPolicy semantics)', () => {
  it('no policies: allow', () => {
    expect(authorize([], req(undefined))).toEqual({ allowed: true });
  });
  it('an ALLOW policy with no rules allows nothing; rules: [{}] allows everything', () => {
    expect(authorize(policies([{ action: 'ALLOW' }]), req('spiffe://a/b')).allowed).toBe(false);
    expect(authorize(policies([{ action: 'ALLOW', rules: [{}] }]), req(undefined)).allowed).toBe(true);
  });
  it('a DENY policy with no rules denies nothing', () => {
    expect(authorize(policies([{ action: 'DENY' }]), req(undefined)).allowed).toBe(true);
  });
  it('DENY wins over ALLOW', () => {
    const p = policies([
      { action: 'ALLOW', rules: [{}] },
      { name: 'd', action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] },
    ]);
    expect(authorize(p, req('x', 'delete', '/a'))).toMatchObject({
      allowed: false,
      reason: expect.stringContaining('"d"'),
    });
    expect(authorize(p, req('x', 'GET', '/a')).allowed).toBe(true);
  });
  it('principals match with or without spiffe://, with * prefix/suffix', () => {
    const p = policies([{ rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/*'] } }] }] }]);
    expect(authorize(p, req('spiffe://cluster.local/ns/default/sa/x')).allowed).toBe(true);
    expect(authorize(p, req('spiffe://cluster.local/ns/other/sa/x')).allowed).toBe(false);
    expect(authorize(p, req(undefined)).allowed).toBe(false);
    const q = policies([{ rules: [{ from: [{ source: { principals: ['*/sa/gateway'] } }] }] }]);
    expect(authorize(q, req('spiffe://cluster.local/ns/a/sa/gateway')).allowed).toBe(true);
  });
  it('notPrincipals, notPaths, notMethods', () => {
    const p = policies([
      {
        rules: [
          {
            from: [{ source: { notPrincipals: ['spiffe://td/bad'] } }],
            to: [{ operation: { notPaths: ['/private/*'], notMethods: ['PUT'] } }],
          },
        ],
      },
    ]);
    expect(authorize(p, req('spiffe://td/good', 'GET', '/x')).allowed).toBe(true);
    expect(authorize(p, req('spiffe://td/bad', 'GET', '/x')).allowed).toBe(false);
    expect(authorize(p, req('spiffe://td/good', 'GET', '/private/1')).allowed).toBe(false);
    expect(authorize(p, req('spiffe://td/good', 'PUT', '/x')).allowed).toBe(false);
  });
  it('within a rule, from and to must both match; any entry of each list may', () => {
    const p = policies([
      {
        rules: [
          {
            from: [
              { source: { principals: ['spiffe://td/a'] } },
              { source: { principals: ['spiffe://td/b'] } },
            ],
            to: [{ operation: { paths: ['/x'] } }, { operation: { paths: ['/y'], methods: ['POST'] } }],
          },
        ],
      },
    ]);
    expect(authorize(p, req('spiffe://td/b', 'POST', '/y')).allowed).toBe(true);
    expect(authorize(p, req('spiffe://td/b', 'GET', '/y')).allowed).toBe(false);
    expect(authorize(p, req('spiffe://td/c', 'GET', '/x')).allowed).toBe(false);
  });
});

describe('authorize: path case (authorization.pathCase)', () => {
  const denyAdmin = policies([
    { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/admin/*'] } }] }] },
  ]);
  const allowApi = policies([{ action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/api/*'] } }] }] }]);
  const allowButAdmin = policies([
    { action: 'ALLOW', rules: [{ to: [{ operation: { notPaths: ['/admin/*'] } }] }] },
  ]);
  const denyButPublic = policies([
    { action: 'DENY', rules: [{ to: [{ operation: { notPaths: ['/public/*'] } }] }] },
  ]);
  const allowed = (
    p: ReturnType<typeof policies>,
    path: string,
    pathCase?: 'FAIL_CLOSED' | 'SENSITIVE' | 'INSENSITIVE',
  ) => authorize(p, req(undefined, 'GET', path), pathCase).allowed;

  it('FAIL_CLOSED (default): a DENY path and an ALLOW notPath match in any case, so /ADMIN is refused', () => {
    expect(allowed(denyAdmin, '/ADMIN/secret')).toBe(false);
    expect(allowed(denyAdmin, '/Admin')).toBe(false);
    expect(allowed(allowButAdmin, '/ADMIN/x')).toBe(false);
    // ...while an ALLOW path and a DENY notPath keep Istio's exact case: they never allow more.
    expect(allowed(allowApi, '/api/x')).toBe(true);
    expect(allowed(allowApi, '/API/x')).toBe(false);
    expect(allowed(denyButPublic, '/public/x')).toBe(true);
    expect(allowed(denyButPublic, '/PUBLIC/x')).toBe(false);
  });

  it("SENSITIVE is Istio's exact matching; INSENSITIVE folds ASCII case everywhere", () => {
    expect(allowed(denyAdmin, '/ADMIN/secret', 'SENSITIVE')).toBe(true);
    expect(allowed(allowButAdmin, '/ADMIN/x', 'SENSITIVE')).toBe(true);
    expect(allowed(denyAdmin, '/ADMIN/secret', 'INSENSITIVE')).toBe(false);
    expect(allowed(allowApi, '/API/x', 'INSENSITIVE')).toBe(true);
    expect(allowed(denyButPublic, '/PUBLIC/x', 'INSENSITIVE')).toBe(true);
  });
});

describe('trust domain aliases (Istio trustDomainAliases)', () => {
  // own domain a.example, alias old.example
  const canon = (id: string) => id.replace(/^(spiffe:\/\/)?old\.example(\/|$)/, '$1a.example$2');
  const allowOnly = (principals: string[]) =>
    policies([{ action: 'ALLOW', rules: [{ from: [{ source: { principals } }] }] }]);

  it('a caller in an alias domain matches a policy naming the own domain, and the other way round', () => {
    const own = allowOnly(['a.example/ns/x/sa/y']);
    expect(authorize(own, req('spiffe://old.example/ns/x/sa/y'), 'FAIL_CLOSED', canon).allowed).toBe(true);
    expect(authorize(own, req('spiffe://old.example/ns/x/sa/y')).allowed).toBe(false);
    const alias = allowOnly(['spiffe://old.example/ns/x/*']);
    expect(authorize(alias, req('spiffe://a.example/ns/x/sa/y'), 'FAIL_CLOSED', canon).allowed).toBe(true);
    expect(authorize(alias, req('spiffe://b.example/ns/x/sa/y'), 'FAIL_CLOSED', canon).allowed).toBe(false);
  });
  it('notPrincipals too, and the refusal names the ID the caller presented', () => {
    const p = policies([
      { action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['a.example/*'] } }] }] },
    ]);
    expect(authorize(p, req('spiffe://old.example/ns/x/sa/y'), 'FAIL_CLOSED', canon).allowed).toBe(true);
    const d = authorize(p, req('spiffe://b.example/ns/x/sa/y'), 'FAIL_CLOSED', canon);
    expect(d).toMatchObject({
      allowed: false,
      reason: expect.stringContaining('spiffe://b.example/ns/x/sa/y'),
    });
  });
});
