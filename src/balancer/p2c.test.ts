import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import {
  EFFECTIVE_WEIGHT,
  EJECTED_UNTIL,
  EWMA_ESTIMATE,
  INFLIGHT,
  loadTableStats,
  tables,
} from './load-table.ts';
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

  it('picks from the load table rows exactly as through the endpoint objects (same draws, same choices)', () => {
    eps = makeEndpoints(150); // the rows are read from 128 endpoints on
    const rand = seeded(11);
    const viaRows = new P2CBalancer('PEAK_EWMA', peakEwmaCost, seeded(12));
    // Another function with the same cost: the generic path, through the endpoint objects.
    const viaObjects = new P2CBalancer('PEAK_EWMA', (ep, now) => peakEwmaCost(ep, now), seeded(12));
    const leastRows = new P2CBalancer('LEAST_REQUEST', leastRequestCost, seeded(13));
    const leastObjects = new P2CBalancer('LEAST_REQUEST', (ep) => leastRequestCost(ep), seeded(13));
    let now = 1;
    let differentLists = 0;
    for (let round = 0; round < 300; round++) {
      now += rand() * 50;
      for (const ep of eps) {
        const r = rand();
        if (r < 0.5) ep.ewma.observe(1 + rand() * 60, now);
        else if (r < 0.55) ep.ewma.raise(rand() * 100, now);
        if (rand() < 0.3) ep.failures.observe(rand() < 0.3, now);
        ep.inflight = Math.floor(rand() * 4);
        ep.healthy = rand() > 0.1;
        ep.draining = rand() < 0.05;
        ep.ejectedUntil = rand() < 0.1 ? now + rand() * 20 - 10 : 0;
        ep.weight = 1 + Math.floor(rand() * 3);
      }
      const exclude = rand() < 0.3 ? new Set([eps[Math.floor(rand() * eps.length)]!]) : undefined;
      const ctx = { now, exclude, panic: rand() < 0.1 };
      for (let i = 0; i < 20; i++) {
        const a = viaRows.pick(eps, ctx);
        expect(a).toBe(viaObjects.pick(eps, ctx));
        expect(leastRows.pick(eps, ctx)).toBe(leastObjects.pick(eps, ctx));
        if (a !== eps[0]) differentLists++;
      }
    }
    expect(differentLists).toBeGreaterThan(0);
  });

  it('keeps the load state of an endpoint in its row of the load table', () => {
    eps = makeEndpoints(1);
    const ep = eps[0]!;
    const { o } = ep.load;
    const t = tables.hot;
    ep.inflight = 3;
    ep.ejectedUntil = 42;
    ep.weight = 2;
    ep.healthy = false;
    ep.ewma.observe(7, 5);
    expect([t[o + INFLIGHT], t[o + EJECTED_UNTIL], t[o + EFFECTIVE_WEIGHT], t[o + EWMA_ESTIMATE]]).toEqual([
      3, 42, 2, 7,
    ]);
    expect(ep.isAvailable(100)).toBe(false);
    ep.healthy = true;
    expect(ep.isAvailable(41)).toBe(false);
    expect(ep.isAvailable(42)).toBe(true);
  });

  it('keeps every row when the load table grows (the endpoints made before and after)', () => {
    eps = makeEndpoints(2);
    eps[0]!.ewma.observe(12, 1);
    eps[0]!.inflight = 2;
    const before = loadTableStats().capacity;
    // Enough endpoints to double the table at least once.
    const more = makeEndpoints(before + 10, {}, 100);
    expect(loadTableStats().capacity).toBeGreaterThan(before);
    eps.push(...more);
    expect(eps[0]!.ewma.estimate(1)).toBe(12);
    expect(eps[0]!.inflight).toBe(2);
    const last = more[more.length - 1]!;
    expect(last.healthy).toBe(true);
    expect(last.isAvailable(0)).toBe(true);
    last.ewma.observe(40, 1);
    expect(last.ewma.sampled).toBe(true);
    expect(last.ewma.estimate(1)).toBe(40);
  });
});
