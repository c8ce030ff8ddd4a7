import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPki, type Pki, spiffeBundleOf } from '../../test/support/certs.ts';
import { certificatesOfPem, chainsTo, pemOfSpiffeBundle } from './bundle.ts';

let a: Pki;
let b: Pki;
beforeAll(() => {
  a = createPki('unit-ca-a');
  b = createPki('unit-ca-b');
});
afterAll(() => {
  a.cleanup();
  b.cleanup();
});

const x509 = (pem: string) => new X509Certificate(pem);

describe('certificatesOfPem', () => {
  it('reads every certificate of a bundle', () => {
    expect(certificatesOfPem(a.ca + b.ca).map((c) => c.subject)).toEqual(['CN=unit-ca-a', 'CN=unit-ca-b']);
  });
  it('refuses a bundle without a certificate, or with one that does not parse', () => {
    expect(() => certificatesOfPem('hello')).toThrow('holds no PEM certificate');
    expect(() =>
      certificatesOfPem(`${a.ca}-----BEGIN CERTIFICATE-----\nbm90\n-----END CERTIFICATE-----\n`),
    ).toThrow('certificate #2 does not parse');
  });
});

describe('pemOfSpiffeBundle (SPIFFE Trust Domain and Bundle format)', () => {
  it('takes the x509-svid authorities and ignores jwt-svid keys', () => {
    const pem = pemOfSpiffeBundle(spiffeBundleOf(a.ca, b.ca));
    expect(certificatesOfPem(pem).map((c) => c.fingerprint256)).toEqual([
      x509(a.ca).fingerprint256,
      x509(b.ca).fingerprint256,
    ]);
  });
  it('ignores keys of an unknown use', () => {
    const doc = JSON.parse(spiffeBundleOf(a.ca));
    doc.keys.push({ use: 'something-new', x5c: ['bm90'] });
    expect(certificatesOfPem(pemOfSpiffeBundle(JSON.stringify(doc)))).toHaveLength(1);
  });
  it('says what is wrong', () => {
    expect(() => pemOfSpiffeBundle('{')).toThrow(/^is not JSON/);
    expect(() => pemOfSpiffeBundle('[]')).toThrow('is not a SPIFFE bundle');
    expect(() => pemOfSpiffeBundle('{"keys":{}}')).toThrow('"keys" is not an array');
    expect(() => pemOfSpiffeBundle('{"keys":[1]}')).toThrow('keys[0] is not an object');
    expect(() => pemOfSpiffeBundle('{"keys":[{"use":"x509-svid"}]}')).toThrow(
      'keys[0] (use x509-svid) must have "x5c" with exactly one base64 certificate',
    );
    expect(() => pemOfSpiffeBundle('{"keys":[{"use":"x509-svid","x5c":["bm90"]}]}')).toThrow(
      /keys\[0\]\.x5c\[0\] is not a certificate/,
    );
    expect(() => pemOfSpiffeBundle('{"keys":[{"use":"jwt-svid"}]}')).toThrow('has no x509-svid key');
  });
});

describe('chainsTo: which bundle vouches for a certificate', () => {
  it('a leaf chains to its issuer, not to another CA', () => {
    const leaf = x509(a.issue('leaf-a', ['URI:spiffe://a/x']).cert);
    expect(chainsTo(leaf, [], [x509(a.ca)])).toBe(true);
    expect(chainsTo(leaf, [], [x509(b.ca)])).toBe(false);
    expect(chainsTo(leaf, [], [x509(b.ca), x509(a.ca)])).toBe(true);
  });
  it('through intermediates the peer presented, which must be CAs signed in turn', () => {
    const mid = a.intermediate('unit-mid-a');
    const leaf = x509(mid.issue('leaf-mid', ['URI:spiffe://a/y']).cert);
    expect(chainsTo(leaf, [], [x509(a.ca)])).toBe(false);
    expect(chainsTo(leaf, [x509(mid.ca)], [x509(a.ca)])).toBe(true);
    expect(chainsTo(leaf, [x509(mid.ca)], [x509(b.ca)])).toBe(false);
    // A non-CA certificate is no link, even when its key signed the leaf's issuer name.
    const notCa = x509(a.issue('not-a-ca', ['DNS:x']).cert);
    expect(chainsTo(leaf, [notCa], [x509(a.ca)])).toBe(false);
  });
  it('an expired leaf, or a time outside an anchor’s validity, does not chain', () => {
    const leaf = x509(a.issue('leaf-old', ['URI:spiffe://a/z'], { days: -1 }).cert);
    expect(chainsTo(leaf, [], [x509(a.ca)])).toBe(false);
    const fresh = x509(a.issue('leaf-new', ['URI:spiffe://a/z']).cert);
    expect(chainsTo(fresh, [], [x509(a.ca)], Date.now() + 10 * 86_400_000)).toBe(false);
  });
});
