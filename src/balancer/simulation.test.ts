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

/**
 * Closed loop, 16 callers, five endpoints answering in 5-7 ms; `bad` fails a share of its
 * attempts at once (a fast 503). Outcomes go into the failure rate as the load layer feeds it.
 */
function failingShare(failShare: number, seed = 3): number {
  eps = makeEndpoints(5);
  const bad = eps[4]!;
  const b = createBalancer(loadBalancerSchema.parse({ simple: 'PEAK_EWMA' }), { random: seeded(seed) });
  b.update?.(eps);
  const random = seeded(seed + 1);
  let pending: { at: number; ep: Endpoint; rtt: number; failed: boolean }[] = [];
  let toBad = 0;
  let total = 0;
  const send = (now: number) => {
    const ep = b.pick(eps, { now })!;
    const failed = ep === bad && random() < failShare;
    const rtt = failed ? 0.3 : 5 + random() * 2;
    ep.inflight++;
    pending.push({ at: now + rtt, ep, rtt, failed });
    total++;
    if (ep === bad) toBad++;
  };
  for (let i = 0; i < 16; i++) send(0);
  for (let now = 0; now < 20_000; now += 0.1) {
    const done = pending.filter((p) => p.at <= now);
    if (done.length === 0) continue;
    pending = pending.filter((p) => p.at > now);
    for (const p of done) {
      p.ep.inflight--;
      if (p.failed) p.ep.ewma.raise(p.rtt, now);
      else p.ep.ewma.observe(p.rtt, now);
      p.ep.failures.observe(p.failed, now);
      send(now);
    }
  }
  return toBad / total;
}

describe('balancing a replica that fails fast (simulated)', () => {
  it('PEAK_EWMA gives a replica that fails 30% of attempts at once at most 15% of attempts', () => {
    for (const seed of [3, 11, 29]) expect(failingShare(0.3, seed)).toBeLessThan(0.15);
  });

  it('PEAK_EWMA gives a replica that fails everything at once under 2%, with no outlier detection', () => {
    expect(failingShare(1)).toBeLessThan(0.02);
  });

  it('a healthy set is unaffected: each replica keeps about a fifth', () => {
    const share = failingShare(0);
    expect(share).toBeGreaterThan(0.15);
    expect(share).toBeLessThan(0.25);
  });
});
