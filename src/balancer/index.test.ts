import { afterEach, describe, expect, it } from 'vitest';
import type { Endpoint } from './endpoint.ts';
import { createBalancer } from './index.ts';
import { loadBalancerSchema } from './schema.ts';
import { closeAll, makeEndpoint, makeEndpoints, seeded, tally } from './test-support.ts';

let eps: Endpoint[] = [];
afterEach(async () => {
  await closeAll(eps);
  eps = [];
});

const cfg = (input: unknown) => loadBalancerSchema.parse(input);

describe('createBalancer', () => {
  it('builds the right algorithm', () => {
    const name = (input: unknown) => createBalancer(input === undefined ? undefined : cfg(input), {}).name;
    expect(name(undefined)).toBe('PEAK_EWMA');
    expect(name({ simple: 'UNSPECIFIED' })).toBe('PEAK_EWMA');
    expect(name({ simple: 'LEAST_CONN' })).toBe('LEAST_REQUEST');
    expect(name({ simple: 'ROUND_ROBIN' })).toBe('ROUND_ROBIN');
    expect(name({ simple: 'RANDOM' })).toBe('RANDOM');
    expect(name({ consistentHash: { httpHeaderName: 'x' } })).toBe('RING_HASH');
    expect(name({ consistentHash: { httpHeaderName: 'x', maglev: {} } })).toBe('MAGLEV');
  });

  it('composes locality (when the zone is known) and panic around the algorithm', () => {
    eps = [...makeEndpoints(4, { zone: 'a' }), ...makeEndpoints(4, { zone: 'b' }, 10)];
    const b = createBalancer(cfg({ simple: 'ROUND_ROBIN' }), { zone: 'a', random: seeded(1) });
    const t = tally(100, () => b.pick(eps, { now: 0 }));
    for (const [ep] of t.counts) expect(ep?.zone).toBe('a');
    const off = createBalancer(cfg({ simple: 'ROUND_ROBIN', localityLbSetting: { enabled: false } }), {
      zone: 'a',
    });
    const u = tally(100, () => off.pick(eps, { now: 0 }));
    expect(u.counts.size).toBe(8);
    // 6 of 8 ejected: panic, all endpoints, zones ignored
    for (let i = 0; i < 6; i++) eps[i]!.ejectedUntil = 1e12;
    b.update?.(eps);
    const p = tally(100, () => b.pick(eps, { now: 0 }));
    expect(p.counts.size).toBe(8);
  });

  it('slow start ramps up endpoints added later', () => {
    eps = makeEndpoints(4, { now: 0 });
    const b = createBalancer(cfg({ simple: 'ROUND_ROBIN', warmupDurationSecs: '10s' }), {
      random: seeded(2),
    });
    b.update?.(eps);
    const late = makeEndpoint(99, { now: 1000 });
    const list = [...eps, late];
    b.update?.(list);
    // at its start: weight 0.1 against 1 each → 0.1 / 4.1 of the picks
    const t = tally(4100, () => b.pick(list, { now: 1000 }));
    expect(t.of(late)).toBeGreaterThan(80);
    expect(t.of(late)).toBeLessThan(120);
    const v = tally(5000, () => b.pick(list, { now: 11_000 }));
    expect(v.of(late)).toBe(1000);
    eps.push(late);
  });

  it('consistent hash with a key sticks, and ignores slow start', () => {
    eps = makeEndpoints(6);
    const b = createBalancer(
      cfg({ consistentHash: { httpHeaderName: 'x-user' }, warmupDurationSecs: '1m' }),
      {},
    );
    const first = b.pick(eps, { now: 0, hashKey: 'ann' });
    for (let i = 0; i < 20; i++) expect(b.pick(eps, { now: i, hashKey: 'ann' })).toBe(first);
  });
});

describe('endpointSnapshot', () => {
  it('shows EWMA, in-flight, weight and the slow-start weight', async () => {
    const { endpointSnapshot } = await import('./index.ts');
    eps = makeEndpoints(1, { now: 0, zone: 'a' });
    const late = makeEndpoint(5, { now: 5000, weight: 4 });
    eps.push(late);
    const b = createBalancer(cfg({ warmupDurationSecs: '10s' }), {});
    b.update?.([eps[0]!]);
    late.inflight = 2;
    late.ewma.observe(42, 5000);
    expect(endpointSnapshot(late, 10_000, b)).toEqual({
      address: late.address,
      inflight: 2,
      ewmaMs: expect.closeTo(42 * 0.5 ** 0.5, 2),
      weight: 4,
      effectiveWeight: 2,
      healthy: true,
      ejected: false,
      draining: false,
    });
    expect(endpointSnapshot(eps[0]!, 0).zone).toBe('a');
  });
});
