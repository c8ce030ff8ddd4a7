import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { isPrime, MaglevBalancer } from './maglev.ts';
import { RingHashBalancer } from './ring-hash.ts';
import { closeAll, makeEndpoints, seeded, tally } from './test-support.ts';
import type { Balancer } from './types.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

const KEYS = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

function assign(b: Balancer, list: readonly Endpoint[]): Map<string, Endpoint | undefined> {
  const m = new Map<string, Endpoint | undefined>();
  for (const k of KEYS) m.set(k, b.pick(list, { now: 0, hashKey: k }));
  return m;
}

const kinds: [string, () => Balancer][] = [
  ['ring hash', () => new RingHashBalancer(1024, seeded(1))],
  ['maglev', () => new MaglevBalancer(65537, seeded(1))],
];

describe.each(kinds)('%s', (_name, make) => {
  it('is deterministic: the same key goes to the same endpoint, across instances', () => {
    eps = makeEndpoints(10);
    const a = assign(make(), eps);
    const b = assign(make(), eps);
    expect([...a.values()]).toEqual([...b.values()]);
  });

  it('spreads keys evenly (each of 10 endpoints within ±35% of its share)', () => {
    eps = makeEndpoints(10);
    const counts = new Map<Endpoint | undefined, number>();
    for (const ep of assign(make(), eps).values()) counts.set(ep, (counts.get(ep) ?? 0) + 1);
    for (const ep of eps) {
      const c = counts.get(ep) ?? 0;
      expect(c).toBeGreaterThan(2000 * 0.65);
      expect(c).toBeLessThan(2000 * 1.35);
    }
  });

  it.each([5, 10, 50])('removing 1 of %i endpoints moves about 1/N of the keys', (n) => {
    eps = makeEndpoints(n);
    const b = make();
    const before = assign(b, eps);
    const removed = eps[Math.floor(n / 2)]!;
    const after = assign(
      b,
      eps.filter((ep) => ep !== removed),
    );
    let moved = 0;
    let movedFromOthers = 0;
    for (const k of KEYS) {
      if (before.get(k) !== after.get(k)) {
        moved++;
        if (before.get(k) !== removed) movedFromOthers++;
      }
    }
    const share = moved / KEYS.length;
    // Ideal: 1/N. Ring hash moves exactly the removed endpoint's keys; Maglev a few more.
    expect(share).toBeGreaterThan(0.5 / n);
    expect(share).toBeLessThan(1.6 / n + 0.01);
    expect(movedFromOthers / KEYS.length).toBeLessThan(0.02);
  });

  it('an unusable endpoint loses only its own keys, and gets them back when usable again', () => {
    eps = makeEndpoints(8);
    const b = make();
    const before = assign(b, eps);
    eps[3]!.ejectedUntil = 10;
    const during = assign(b, eps);
    for (const k of KEYS) {
      if (before.get(k) !== eps[3]) expect(during.get(k)).toBe(before.get(k));
      else expect(during.get(k)).not.toBe(eps[3]);
    }
    const m = new Map<string, Endpoint | undefined>();
    for (const k of KEYS) m.set(k, b.pick(eps, { now: 10, hashKey: k }));
    expect([...m.values()]).toEqual([...before.values()]);
  });

  it('follows weights', () => {
    eps = makeEndpoints(4);
    eps[0]!.weight = 3;
    const counts = new Map<Endpoint | undefined, number>();
    for (const ep of assign(make(), eps).values()) counts.set(ep, (counts.get(ep) ?? 0) + 1);
    const heavy = (counts.get(eps[0]) ?? 0) / KEYS.length;
    expect(heavy).toBeGreaterThan(0.4);
    expect(heavy).toBeLessThan(0.6);
  });

  it('picks at random without a hash key, and undefined when nothing is usable', () => {
    eps = makeEndpoints(4);
    const b = make();
    const t = tally(400, () => b.pick(eps, { now: 0 }));
    expect(t.counts.size).toBe(4);
    expect(b.pick(eps, { now: 0, hashKey: 'x', exclude: new Set(eps) })).toBeUndefined();
    expect(b.pick([], { now: 0, hashKey: 'x' })).toBeUndefined();
  });
});

describe('RingHashBalancer', () => {
  it('gives minimumRingSize / 8 points per unit of weight, at least one per endpoint', () => {
    eps = makeEndpoints(8);
    eps[0]!.weight = 2;
    const b = new RingHashBalancer(1024);
    b.update(eps);
    expect(b.ringSize).toBe(9 * 128);
    const small = new RingHashBalancer(2);
    small.update(eps);
    expect(small.ringSize).toBe(9);
  });
});

describe('MaglevBalancer', () => {
  it('needs a prime table size', () => {
    expect(isPrime(65537)).toBe(true);
    expect(isPrime(65536)).toBe(false);
    expect(() => new MaglevBalancer(1000)).toThrow(/prime/);
  });
});
