import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { LocalityBalancer, meshZone } from './locality.ts';
import { leastRequestCost, P2CBalancer } from './p2c.ts';
import { RingHashBalancer } from './ring-hash.ts';
import { closeAll, makeEndpoints, seeded, tally } from './test-support.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

const p2c = (seed: number) => () => new P2CBalancer('LEAST_REQUEST', leastRequestCost, seeded(seed));

function zones(): Endpoint[] {
  return [...makeEndpoints(10, { zone: 'a' }), ...makeEndpoints(10, { zone: 'b' }, 100)];
}

describe('LocalityBalancer', () => {
  it('sends everything to the local zone while it is healthy enough', () => {
    eps = zones();
    const b = new LocalityBalancer('a', 70, p2c(1), seeded(2));
    eps[0]!.healthy = false;
    eps[1]!.healthy = false;
    eps[2]!.healthy = false; // 70% healthy: still at the threshold
    const t = tally(2000, () => b.pick(eps, { now: 0 }));
    for (const [ep] of t.counts) expect(ep?.zone).toBe('a');
  });

  it('spills in proportion below the threshold, and everything when the zone is down', () => {
    eps = zones();
    const b = new LocalityBalancer('a', 80, p2c(3), seeded(4));
    for (let i = 0; i < 6; i++) eps[i]!.ejectedUntil = 1000; // 40% available → keeps 40/80 = half
    expect(b.localShare(eps, 0)).toBeCloseTo(0.5);
    const t = tally(10_000, () => b.pick(eps, { now: 0 }));
    let local = 0;
    for (const [ep, c] of t.counts) if (ep?.zone === 'a') local += c;
    expect(local / 10_000).toBeGreaterThan(0.45);
    expect(local / 10_000).toBeLessThan(0.55);
    for (let i = 0; i < 10; i++) eps[i]!.ejectedUntil = 1000;
    b.update(eps); // health changed: refresh now
    expect(b.localShare(eps, 0)).toBe(0);
    expect(b.pick(eps, { now: 0 })?.zone).toBe('b');
    expect(b.localShare(eps, 1000)).toBe(1); // ejections over (seen after the refresh interval)
  });

  it('uses the other zones when there is no local endpoint, and local ones when the others are excluded', () => {
    eps = zones();
    const b = new LocalityBalancer('c', 70, p2c(5), seeded(6));
    expect(b.localShare(eps, 0)).toBe(0);
    expect(b.pick(eps, { now: 0 })).toBeDefined();
    const a = new LocalityBalancer('a', 70, p2c(7), seeded(8));
    const exclude = new Set(eps.filter((ep) => ep.zone === 'a'));
    expect(a.pick(eps, { now: 0, exclude })?.zone).toBe('b');
  });

  it('in panic mode ignores zones', () => {
    eps = zones();
    const b = new LocalityBalancer('a', 70, p2c(9), seeded(10));
    const t = tally(2000, () => b.pick(eps, { now: 0, panic: true }));
    expect([...t.counts.keys()].some((ep) => ep?.zone === 'b')).toBe(true);
  });

  it('with a hash key, the zone choice follows the key, so a session does not flip', () => {
    eps = zones();
    const b = new LocalityBalancer('a', 80, () => new RingHashBalancer(1024, seeded(11)), seeded(12));
    for (let i = 0; i < 6; i++) eps[i]!.healthy = false;
    for (let k = 0; k < 50; k++) {
      const first = b.pick(eps, { now: 0, hashKey: `k${k}` });
      for (let j = 0; j < 5; j++) expect(b.pick(eps, { now: 0, hashKey: `k${k}` })).toBe(first);
    }
  });
});

describe('meshZone', () => {
  it('takes the config first, then MESHWORK_ZONE', () => {
    expect(meshZone('x', { MESHWORK_ZONE: 'y' })).toBe('x');
    expect(meshZone(undefined, { MESHWORK_ZONE: 'y' })).toBe('y');
    expect(meshZone(undefined, { MESHWORK_ZONE: '' })).toBeUndefined();
  });
});
