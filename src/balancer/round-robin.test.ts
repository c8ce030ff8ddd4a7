import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { RoundRobinBalancer } from './round-robin.ts';
import { closeAll, makeEndpoints } from './test-support.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

describe('RoundRobinBalancer (smooth weighted)', () => {
  it('interleaves by weight as nginx does: 5,1,1 → a a b a c a a', () => {
    eps = makeEndpoints(3);
    eps[0]!.weight = 5;
    const b = new RoundRobinBalancer();
    const seq = Array.from({ length: 7 }, () => eps.indexOf(b.pick(eps, { now: 0 })!));
    expect(seq).toEqual([0, 0, 1, 0, 2, 0, 0]);
  });

  it('cycles evenly with equal weights', () => {
    eps = makeEndpoints(3);
    const b = new RoundRobinBalancer();
    const seq = Array.from({ length: 6 }, () => eps.indexOf(b.pick(eps, { now: 0 })!));
    expect(seq).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it('skips unusable endpoints and keeps proportions among the rest', () => {
    eps = makeEndpoints(3);
    eps[1]!.healthy = false;
    const b = new RoundRobinBalancer();
    const seq = Array.from({ length: 4 }, () => eps.indexOf(b.pick(eps, { now: 0 })!));
    expect(seq).toEqual([0, 2, 0, 2]);
    expect(b.pick(eps, { now: 0, exclude: new Set(eps) })).toBeUndefined();
  });

  it('resets its state when the list changes', () => {
    eps = makeEndpoints(3);
    const b = new RoundRobinBalancer();
    b.pick(eps, { now: 0 });
    const shorter = eps.slice(1);
    expect(b.pick(shorter, { now: 0 })).toBe(eps[1]);
  });
});
