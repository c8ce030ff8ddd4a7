/**
 * A discrete-event simulation with a fake clock: five endpoints, one 40 ms slower, 1000 requests
 * per second for 20 s. Checks where the traffic goes (not speed, which is measured in bench/).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { createBalancer } from './index.ts';
import { loadBalancerSchema } from './schema.ts';
import { closeAll, makeEndpoints, seeded } from './test-support.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

function slowShare(simple: string): number {
  eps = makeEndpoints(5);
  const slow = eps[4]!;
  const b = createBalancer(loadBalancerSchema.parse({ simple }), { random: seeded(42) });
  b.update?.(eps);
  const random = seeded(7);
  let pending: { at: number; ep: Endpoint; rtt: number }[] = [];
  let toSlow = 0;
  let total = 0;
  for (let now = 0; now < 20_000; now++) {
    const done = pending.filter((p) => p.at <= now);
    if (done.length > 0) {
      pending = pending.filter((p) => p.at > now);
      for (const p of done) {
        p.ep.inflight--;
        p.ep.ewma.observe(p.rtt, now);
      }
    }
    const ep = b.pick(eps, { now })!;
    const rtt = (ep === slow ? 45 : 5) + Math.floor(random() * 3);
    ep.inflight++;
    pending.push({ at: now + rtt, ep, rtt });
    total++;
    if (ep === slow) toSlow++;
  }
  return toSlow / total;
}

describe('balancing a slow endpoint (simulated)', () => {
  it('PEAK_EWMA sends little to the slow one; ROUND_ROBIN and RANDOM a fifth', () => {
    const ewma = slowShare('PEAK_EWMA');
    const least = slowShare('LEAST_REQUEST');
    const rr = slowShare('ROUND_ROBIN');
    const rnd = slowShare('RANDOM');
    expect(ewma).toBeLessThan(0.03);
    expect(least).toBeLessThan(0.15); // in-flight counts see it, more slowly
    expect(rr).toBeCloseTo(0.2, 2);
    expect(rnd).toBeGreaterThan(0.18);
    expect(rnd).toBeLessThan(0.22);
  });
});
