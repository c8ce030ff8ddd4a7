import { describe, expect, it } from 'vitest';
import { mergeSubsetPolicy, selectorMatches } from './subset.ts';

describe('selectorMatches', () => {
  it('needs every selector label, with the same value', () => {
    expect(selectorMatches({ version: 'v1' }, { version: 'v1', zone: 'a' })).toBe(true);
    expect(selectorMatches({ version: 'v1', zone: 'b' }, { version: 'v1', zone: 'a' })).toBe(false);
    expect(selectorMatches({ version: 'v1' }, undefined)).toBe(false);
    expect(selectorMatches({}, undefined)).toBe(true);
    expect(selectorMatches(undefined, { a: 'b' })).toBe(true);
  });
});

describe('mergeSubsetPolicy', () => {
  it('a field set on the subset replaces the service field as a whole (Istio MergeTrafficPolicy)', () => {
    const service: {
      loadBalancer?: object;
      connectionPool?: { tcp?: { maxConnections: number }; http?: object };
    } = {
      loadBalancer: { simple: 'PEAK_EWMA' },
      connectionPool: { tcp: { maxConnections: 100 }, http: { http2MaxRequests: 1000 } },
    };
    const merged = mergeSubsetPolicy(service, { connectionPool: { tcp: { maxConnections: 5 } } });
    expect(merged).toEqual({
      loadBalancer: { simple: 'PEAK_EWMA' },
      connectionPool: { tcp: { maxConnections: 5 } },
    });
    expect(service.connectionPool?.tcp?.maxConnections).toBe(100); // not mutated
    expect(mergeSubsetPolicy(service, undefined)).toBe(service);
    expect(mergeSubsetPolicy(undefined, { loadBalancer: { simple: 'PEAK_EWMA' } })).toEqual({
      loadBalancer: { simple: 'PEAK_EWMA' },
    });
  });
});
