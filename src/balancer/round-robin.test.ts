import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { RoundRobinBalancer, SMOOTH_MAX_ENDPOINTS } from './round-robin.ts';
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

describe('RoundRobinBalancer above SMOOTH_MAX_ENDPOINTS (EDF)', () => {
  it('keeps weight proportions and interleaves', () => {
    eps = makeEndpoints(SMOOTH_MAX_ENDPOINTS + 44); // 300
    for (let i = 0; i < eps.length; i++) eps[i]!.weight = 1 + (i % 3);
    const b = new RoundRobinBalancer();
    const counts = new Map<Endpoint, number>();
    const total = 600 * 10; // 10 full cycles (total weight 600)
    for (let i = 0; i < total; i++) {
      const ep = b.pick(eps, { now: 0 })!;
      counts.set(ep, (counts.get(ep) ?? 0) + 1);
    }
    for (let i = 0; i < eps.length; i++) expect(counts.get(eps[i]!)).toBe(10 * (1 + (i % 3)));
  });

  it('skips unusable endpoints without a burst when they come back', () => {
    eps = makeEndpoints(300);
    eps[0]!.weight = 2; // not uniform: EDF path
    eps[5]!.ejectedUntil = 1000;
    const b = new RoundRobinBalancer();
    let seen = 0;
    for (let i = 0; i < 3010; i++) if (b.pick(eps, { now: 0 }) === eps[5]) seen++;
    expect(seen).toBe(0);
    let back = 0;
    for (let i = 0; i < 301; i++) if (b.pick(eps, { now: 1000 }) === eps[5]) back++;
    expect(back).toBeLessThanOrEqual(2);
    expect(b.pick(eps, { now: 0, exclude: new Set(eps) })).toBeUndefined();
  });
});
