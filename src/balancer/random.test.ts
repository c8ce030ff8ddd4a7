import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { RandomBalancer } from './random.ts';
import { closeAll, makeEndpoints, seeded, tally } from './test-support.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

describe('RandomBalancer (weighted)', () => {
  it('picks in proportion to weight', () => {
    eps = makeEndpoints(3);
    eps[0]!.weight = 2;
    eps[2]!.weight = 7;
    const b = new RandomBalancer(seeded(7));
    const n = 100_000;
    const t = tally(n, () => b.pick(eps, { now: 0 }));
    expect(t.of(eps[0]) / n).toBeCloseTo(0.2, 1);
    expect(t.of(eps[1]) / n).toBeCloseTo(0.1, 1);
    expect(t.of(eps[2]) / n).toBeCloseTo(0.7, 1);
  });

  it('falls back to an exact draw when weights are very uneven', () => {
    eps = makeEndpoints(100);
    for (const ep of eps) ep.weight = 1e-9;
    eps[57]!.weight = 1000;
    eps[57]!.healthy = false;
    eps[3]!.weight = 1e-3;
    const b = new RandomBalancer(seeded(8));
    const t = tally(200, () => b.pick(eps, { now: 0 }));
    expect(t.of(eps[57])).toBe(0);
    expect(t.of(eps[3])).toBeGreaterThan(190);
  });

  it('returns undefined when nothing is usable', () => {
    eps = makeEndpoints(3);
    const b = new RandomBalancer(seeded(9));
    expect(b.pick(eps, { now: 0, exclude: new Set(eps) })).toBeUndefined();
    expect(b.pick([], { now: 0 })).toBeUndefined();
  });
});
