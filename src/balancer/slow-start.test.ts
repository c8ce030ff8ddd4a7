import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { SlowStartWeight, slowStartFactor } from './slow-start.ts';
import { closeAll, makeEndpoint } from './test-support.ts';
import { defaultWeight } from './usable.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

const linear = { windowMs: 30_000, minFraction: 0.1, aggression: 1 };

describe('slowStartFactor', () => {
  it('ramps linearly from the 10% floor to 1 over the window', () => {
    expect(slowStartFactor(0, linear)).toBe(0.1);
    expect(slowStartFactor(1500, linear)).toBe(0.1);
    expect(slowStartFactor(15_000, linear)).toBeCloseTo(0.5);
    expect(slowStartFactor(29_999, linear)).toBeCloseTo(1, 3);
    expect(slowStartFactor(30_000, linear)).toBe(1);
    expect(slowStartFactor(1e9, linear)).toBe(1);
  });

  it('with aggression > 1 starts slower', () => {
    const a2 = { ...linear, aggression: 2, minFraction: 0 };
    expect(slowStartFactor(7500, a2)).toBeCloseTo(0.5); // (1/4)^(1/2)
    const a4 = { ...linear, aggression: 0.5, minFraction: 0 };
    expect(slowStartFactor(15_000, a4)).toBeCloseTo(0.25);
  });
});

describe('SlowStartWeight', () => {
  it('exempts the initial endpoints and ramps up later ones', () => {
    const first = makeEndpoint(0, { now: 0, weight: 2 });
    const later = makeEndpoint(1, { now: 10_000, weight: 2 });
    eps = [first, later];
    const s = new SlowStartWeight(linear, defaultWeight);
    s.seen([first]);
    s.seen([first, later]); // only the first list counts
    expect(s.weight(first, 10_000)).toBe(2);
    expect(s.weight(later, 10_000)).toBeCloseTo(0.2);
    expect(s.weight(later, 25_000)).toBeCloseTo(1);
    expect(s.weight(later, 40_000)).toBe(2);
  });
});
