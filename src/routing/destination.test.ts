import { describe, expect, it } from 'vitest';
import { binomialTolerance, seededRandom } from '../../test/support/seeded-random.ts';
import { compileDestinations } from './destination.ts';
import { routeListSchema } from './schema.ts';

const N = 100_000;

function shares(list: unknown[], seed = 1): Map<string | undefined, number> {
  const picker = compileDestinations(routeListSchema.parse(list));
  const random = seededRandom(seed);
  const counts = new Map<string | undefined, number>();
  for (let i = 0; i < N; i++) {
    const s = picker.pick(random).destination.subset;
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return new Map([...counts].map(([k, v]) => [k, v / N]));
}

describe('compileDestinations / pick', () => {
  it('splits 90/10 within tolerance (seeded)', () => {
    const s = shares([
      { destination: { subset: 'v1' }, weight: 90 },
      { destination: { subset: 'v2' }, weight: 10 },
    ]);
    expect(Math.abs((s.get('v1') ?? 0) - 0.9)).toBeLessThan(binomialTolerance(0.9, N));
    expect(Math.abs((s.get('v2') ?? 0) - 0.1)).toBeLessThan(binomialTolerance(0.1, N));
  });

  it('splits 50/50 and 20/30/50 within tolerance (seeded)', () => {
    const a = shares(
      [
        { destination: { subset: 'v1' }, weight: 50 },
        { destination: { subset: 'v3' }, weight: 50 },
      ],
      2,
    );
    expect(Math.abs((a.get('v3') ?? 0) - 0.5)).toBeLessThan(binomialTolerance(0.5, N));
    const b = shares(
      [
        { destination: { subset: 'a' }, weight: 20 },
        { destination: { subset: 'b' }, weight: 30 },
        { destination: { subset: 'c' }, weight: 50 },
      ],
      3,
    );
    for (const [k, p] of [
      ['a', 0.2],
      ['b', 0.3],
      ['c', 0.5],
    ] as const) {
      expect(Math.abs((b.get(k) ?? 0) - p)).toBeLessThan(binomialTolerance(p, N));
    }
  });

  it('no weights: an even split', () => {
    const s = shares([
      { destination: { subset: 'a' } },
      { destination: { subset: 'b' } },
      { destination: { subset: 'c' } },
    ]);
    for (const k of ['a', 'b', 'c'])
      expect(Math.abs((s.get(k) ?? 0) - 1 / 3)).toBeLessThan(binomialTolerance(1 / 3, N));
  });

  it('weight 0 and unset-in-a-mix are never chosen; one destination needs no draw', () => {
    const s = shares([
      { destination: { subset: 'a' }, weight: 100 },
      { destination: { subset: 'b' }, weight: 0 },
      { destination: { subset: 'c' } },
    ]);
    expect(s.get('a')).toBe(1);
    const one = compileDestinations(routeListSchema.parse([{ destination: { subset: 'only' } }]));
    expect(one.pick(() => Number.NaN).destination.subset).toBe('only');
  });

  it('draws at the edges land on the right side of each boundary', () => {
    const p = compileDestinations(
      routeListSchema.parse([
        { destination: { subset: 'a' }, weight: 10 },
        { destination: { subset: 'b' }, weight: 90 },
      ]),
    );
    expect(p.pick(() => 0).destination.subset).toBe('a');
    expect(p.pick(() => 0.0999).destination.subset).toBe('a');
    expect(p.pick(() => 0.1).destination.subset).toBe('b');
    expect(p.pick(() => 0.999999).destination.subset).toBe('b');
  });
});
