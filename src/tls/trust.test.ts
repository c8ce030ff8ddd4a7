import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPki, type Pki } from '../../test/support/certs.ts';
import { silentLogger } from '../telemetry/logger.ts';
import { MeshIdentity } from './identity.ts';

let a: Pki;
let b: Pki;
beforeAll(() => {
  a = createPki('trust-unit-a');
  b = createPki('trust-unit-b');
});
afterAll(() => {
  a.cleanup();
  b.cleanup();
});

function identity(extra: Record<string, unknown> = {}, id = 'spiffe://a.example/ns/x/sa/y'): MeshIdentity {
  const me = a.issue(`me-${Math.random().toString(36).slice(2)}`, [`URI:${id}`]);
  return new MeshIdentity({ cert: me.cert, key: me.key, ca: a.ca, ...extra }, silentLogger);
}

describe('TrustDomains', () => {
  it('the own domain comes from the certificate unless trustDomain says', () => {
    const i = identity();
    expect(i.trust.own).toBe('a.example');
    expect(i.trust.domains).toEqual(['a.example']);
    i.close();
    const j = identity({ trustDomain: 'prod.example' });
    expect(j.trust.own).toBe('prod.example');
    j.close();
  });

  it('each domain has its bundle; an alias has the own one; the handshake list is all of them', () => {
    const i = identity({ trustBundles: { 'b.example': b.ca }, trustDomainAliases: ['old.example'] });
    const t = i.trust;
    expect(t.bundlePem('a.example')).toBe(a.ca);
    expect(t.bundlePem('old.example')).toBe(a.ca);
    expect(t.bundlePem('b.example')).toBe(b.ca);
    expect(t.bundlePem('c.example')).toBeUndefined();
    expect(t.allPem()).toContain(a.ca.trim());
    expect(t.allPem()).toContain(b.ca.trim());
    expect(t.equivalents('old.example')).toEqual(['a.example', 'old.example']);
    expect(t.equivalents('b.example')).toEqual(['b.example']);
    i.close();
  });

  it('canonicalId: alias domains become the own one, in SPIFFE IDs and Istio principals alike', () => {
    const i = identity({ trustDomainAliases: ['old.example'] });
    const t = i.trust;
    expect(t.canonicalId('spiffe://old.example/ns/x/sa/y')).toBe('spiffe://a.example/ns/x/sa/y');
    expect(t.canonicalId('old.example/ns/x/*')).toBe('a.example/ns/x/*');
    expect(t.canonicalId('old.example.evil/ns/x')).toBe('old.example.evil/ns/x');
    expect(t.canonicalId('*/sa/y')).toBe('*/sa/y');
    expect(t.canonicalId('spiffe://b.example/ns/x')).toBe('spiffe://b.example/ns/x');
    i.close();
  });

  it('policyId: cluster.local in a policy is the own domain (Istio), unless it is a federated domain here', () => {
    const i = identity({ trustDomainAliases: ['old.example'] });
    expect(i.trust.policyId('cluster.local/ns/x/sa/y')).toBe('a.example/ns/x/sa/y');
    expect(i.trust.policyId('spiffe://cluster.local/ns/x/*')).toBe('spiffe://a.example/ns/x/*');
    expect(i.trust.policyId('cluster.localx/ns/x')).toBe('cluster.localx/ns/x');
    expect(i.trust.policyId('old.example/ns/x')).toBe('a.example/ns/x');
    i.close();
    const f = identity({ trustBundles: { 'cluster.local': b.ca } });
    expect(f.trust.policyId('cluster.local/ns/x/sa/y')).toBe('cluster.local/ns/x/sa/y');
    f.close();
  });

  it('trustBundles or aliases need a known own domain', () => {
    const me = a.issue('no-uri', ['DNS:x']);
    expect(
      () =>
        new MeshIdentity(
          { cert: me.cert, key: me.key, ca: a.ca, trustBundles: { 'b.example': b.ca } },
          silentLogger,
        ),
    ).toThrow(/identity\.trustDomain: is needed with trustBundles/);
  });

  it('a bundle for the own domain (taken from the certificate) is refused', () => {
    expect(() => identity({ trustBundles: { 'a.example': b.ca } })).toThrow(
      /identity\.trustBundles\["a\.example"\]: is the own trust domain/,
    );
  });
});
