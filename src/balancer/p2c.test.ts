import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { leastRequestCost, P2CBalancer, peakEwmaCost } from './p2c.ts';
import { closeAll, makeEndpoints, seeded, tally } from './test-support.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

describe('P2CBalancer', () => {
  it('PEAK_EWMA sends almost nothing to an endpoint with a much higher RTT', () => {
    eps = makeEndpoints(5);
    for (const ep of eps) ep.ewma.observe(10, 1);
    eps[4]!.ewma.observe(50, 1); // 40 ms slower
    const b = new P2CBalancer('PEAK_EWMA', peakEwmaCost, seeded(1));
    const t = tally(10_000, () => b.pick(eps, { now: 1 }));
    // P2C only picks the worst when both draws are it: never with distinct draws.
    expect(t.of(eps[4])).toBe(0);
    expect(t.of(eps[0])).toBeGreaterThan(2000);
  });

  it('cost includes in-flight requests: a loaded fast endpoint loses to an idle one', () => {
    eps = makeEndpoints(2);
    eps[0]!.ewma.observe(10, 1);
    eps[1]!.ewma.observe(20, 1);
    eps[0]!.inflight = 3; // 10 × 4 = 40 > 20 × 1
    const b = new P2CBalancer('PEAK_EWMA', peakEwmaCost, seeded(2));
    expect(b.pick(eps, { now: 1 })).toBe(eps[1]);
  });

  it('PEAK_EWMA probes an endpoint with no sample yet once, without flooding it', () => {
    eps = makeEndpoints(2);
    eps[0]!.ewma.observe(1, 1); // known and fast
    const b = new P2CBalancer('PEAK_EWMA', peakEwmaCost, seeded(4));
    expect(b.pick(eps, { now: 2 })).toBe(eps[1]); // unknown and idle: probed
    eps[1]!.inflight = 1; // the probe is in flight: back to the 30 ms default
    expect(b.pick(eps, { now: 2 })).toBe(eps[0]);
  });

  it('LEAST_REQUEST prefers fewer in-flight requests, weighted', () => {
    eps = makeEndpoints(2);
    eps[0]!.inflight = 1;
    const b = new P2CBalancer('LEAST_REQUEST', leastRequestCost, seeded(3));
    expect(b.pick(eps, { now: 0 })).toBe(eps[1]);
    eps[0]!.weight = 4; // (1+1)/4 < (0+1)/1
    expect(b.pick(eps, { now: 0 })).toBe(eps[0]);
  });

  it('skips unavailable and excluded endpoints, and returns undefined when none is left', () => {
    eps = makeEndpoints(4);
    eps[0]!.healthy = false;
    eps[1]!.ejectedUntil = 100;
    eps[2]!.draining = true;
    const b = new P2CBalancer('LEAST_REQUEST', leastRequestCost, seeded(4));
    for (let i = 0; i < 50; i++) expect(b.pick(eps, { now: 0 })).toBe(eps[3]);
    expect(b.pick(eps, { now: 0, exclude: new Set([eps[3]!]) })).toBeUndefined();
    expect(b.pick(eps, { now: 100, exclude: new Set([eps[3]!]) })).toBe(eps[1]); // ejection over
  });

  it('in panic mode ignores ejection, never a failed health check nor draining', () => {
    eps = makeEndpoints(3);
    eps[0]!.ejectedUntil = 1e12;
    eps[1]!.draining = true;
    eps[2]!.healthy = false;
    const b = new P2CBalancer('LEAST_REQUEST', leastRequestCost, seeded(5));
    expect(b.pick(eps, { now: 0 })).toBeUndefined();
    for (let i = 0; i < 20; i++) expect(b.pick(eps, { now: 0, panic: true })).toBe(eps[0]);
  });

  it('uses the injected weight function', () => {
    eps = makeEndpoints(2);
    const b = new P2CBalancer('LEAST_REQUEST', leastRequestCost, seeded(6), (ep) =>
      ep === eps[0] ? 0.1 : 1,
    );
    const t = tally(1000, () => b.pick(eps, { now: 0 }));
    expect(t.of(eps[1])).toBe(1000);
  });

  it('is O(1): two cost evaluations per pick, whatever the number of endpoints', () => {
    eps = makeEndpoints(1000);
    let calls = 0;
    const b = new P2CBalancer(
      'PEAK_EWMA',
      (ep, now) => {
        calls++;
        return peakEwmaCost(ep, now);
      },
      seeded(10),
    );
    for (let i = 0; i < 1000; i++) b.pick(eps, { now: 0 });
    expect(calls).toBe(2000);
  });
});
