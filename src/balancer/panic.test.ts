import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { leastRequestCost, P2CBalancer } from './p2c.ts';
import { PanicGuard } from './panic.ts';
import { closeAll, makeEndpoints, seeded, tally } from './test-support.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

const inner = () => new P2CBalancer('LEAST_REQUEST', leastRequestCost, seeded(1));

describe('PanicGuard', () => {
  it('keeps to available endpoints while at least half are available (default 50%)', () => {
    eps = makeEndpoints(4);
    eps[0]!.healthy = false;
    eps[1]!.ejectedUntil = 100;
    const g = new PanicGuard(inner());
    expect(g.inPanic(eps, 0)).toBe(false);
    const t = tally(500, () => g.pick(eps, { now: 0 }));
    expect(t.of(eps[0]) + t.of(eps[1])).toBe(0);
  });

  it('balances over all (non-draining) endpoints below the threshold', () => {
    eps = makeEndpoints(5);
    eps[0]!.ejectedUntil = 1e12;
    eps[1]!.ejectedUntil = 1e12;
    eps[2]!.ejectedUntil = 100;
    eps[4]!.draining = true; // not counted, never used: 1 of 4 available
    const g = new PanicGuard(inner());
    expect(g.inPanic(eps, 0)).toBe(true);
    const t = tally(2000, () => g.pick(eps, { now: 0 }));
    expect(t.of(eps[0])).toBeGreaterThan(0);
    expect(t.of(eps[2])).toBeGreaterThan(0);
    expect(t.of(eps[4])).toBe(0);
  });

  it('panics when nothing is available, and never with threshold 0', () => {
    eps = makeEndpoints(2);
    for (const ep of eps) ep.ejectedUntil = 1e12;
    expect(new PanicGuard(inner()).pick(eps, { now: 0 })).toBeDefined();
    expect(new PanicGuard(inner(), 0).pick(eps, { now: 0 })).toBeUndefined();
  });

  it('has a configurable threshold', () => {
    eps = makeEndpoints(10);
    for (let i = 0; i < 3; i++) eps[i]!.ejectedUntil = 1e12;
    expect(new PanicGuard(inner(), 80).inPanic(eps, 0)).toBe(true);
    expect(new PanicGuard(inner(), 70).inPanic(eps, 0)).toBe(false);
  });

  it('treats exclude as a preference: reuses an excluded endpoint rather than failing', () => {
    eps = makeEndpoints(2);
    const g = new PanicGuard(inner());
    expect(g.pick(eps, { now: 0, exclude: new Set([eps[0]!]) })).toBe(eps[1]);
    expect(g.pick(eps, { now: 0, exclude: new Set(eps) })).toBeDefined();
  });

  it('sees ejection changes at once after update(), or after the refresh interval', () => {
    eps = makeEndpoints(2);
    const g = new PanicGuard(inner());
    expect(g.inPanic(eps, 0)).toBe(false);
    for (const ep of eps) ep.ejectedUntil = 1e12;
    expect(g.inPanic(eps, 50)).toBe(false); // cached
    g.update(eps);
    expect(g.inPanic(eps, 50)).toBe(true);
    for (const ep of eps) ep.ejectedUntil = 0;
    expect(g.inPanic(eps, 200)).toBe(false);
  });

  it('endpoints failing their active health check count as unavailable but are never used, even in panic', () => {
    eps = makeEndpoints(4);
    eps[0]!.healthy = false;
    const g = new PanicGuard(inner());
    expect(g.inPanic(eps, 0)).toBe(false); // 3 of 4 available
    let t = tally(500, () => g.pick(eps, { now: 0 }));
    expect(t.of(eps[0])).toBe(0);
    eps[1]!.healthy = false;
    eps[2]!.ejectedUntil = 1e12; // 1 of 4 available: panic, which lifts the ejection only
    g.update(eps);
    expect(g.inPanic(eps, 0)).toBe(true);
    t = tally(500, () => g.pick(eps, { now: 0 }));
    expect(t.of(eps[0]) + t.of(eps[1])).toBe(0);
    expect(t.of(eps[2])).toBeGreaterThan(0);
    expect(t.of(eps[2]) + t.of(eps[3])).toBe(500);
    for (const ep of eps) {
      ep.ejectedUntil = 0;
      ep.healthy = false;
    }
    g.update(eps);
    expect(g.pick(eps, { now: 0 })).toBeUndefined(); // all failing their checks: fail closed
  });
});
