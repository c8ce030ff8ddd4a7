import { describe, expect, it } from 'vitest';
import { presentedSans, sanMatches, trustDomain } from './san.ts';

describe('SAN matching', () => {
  const presented = presentedSans({
    subjectaltname: 'URI:spiffe://cluster.local/ns/default/sa/travels, DNS:*.travels.svc, DNS:travels',
  });
  it('parses the presented SANs', () => {
    expect(presented).toEqual([
      'URI:spiffe://cluster.local/ns/default/sa/travels',
      'DNS:*.travels.svc',
      'DNS:travels',
    ]);
  });
  it('matches SPIFFE IDs exactly against URI SANs', () => {
    expect(sanMatches(['spiffe://cluster.local/ns/default/sa/travels'], presented)).toBe(true);
    expect(sanMatches(['spiffe://cluster.local/ns/default/sa/travel'], presented)).toBe(false);
    expect(sanMatches(['spiffe://cluster.local/ns/default/sa/travels/x'], presented)).toBe(false);
  });
  it('matches DNS names, a certificate wildcard covering one label', () => {
    expect(sanMatches(['TRAVELS'], presented)).toBe(true);
    expect(sanMatches(['a.travels.svc'], presented)).toBe(true);
    expect(sanMatches(['a.b.travels.svc'], presented)).toBe(false);
    expect(sanMatches(['travels.svc'], presented)).toBe(false);
  });
  it('a DNS expectation never matches a URI SAN and vice versa', () => {
    expect(sanMatches(['cluster.local'], ['URI:spiffe://cluster.local/x'])).toBe(false);
    expect(sanMatches(['spiffe://travels'], ['DNS:travels'])).toBe(false);
  });
  it('trust domain', () => {
    expect(trustDomain('spiffe://cluster.local/ns/a')).toBe('cluster.local');
    expect(trustDomain('http://x')).toBeUndefined();
  });
});
