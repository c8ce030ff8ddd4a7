/**
 * Weighted choice among a route's destinations, compiled once per route.
 * Weights: none set = an even split; otherwise an unset weight counts as 0 (the schema has
 * checked that the set ones sum to 100). Destinations with weight 0 are never chosen.
 */
import type { RouteDestination } from './schema.ts';

export type Random = () => number;

export interface DestinationPicker<D extends RouteDestination = RouteDestination> {
  /** Every destination with a weight above 0, in config order. */
  readonly destinations: readonly D[];
  /** Cumulative weights, aligned with `destinations`. */
  readonly cumulative: readonly number[];
  readonly total: number;
  pick(random?: Random): D;
  /** Like pick, but the index in `destinations`. */
  pickIndex(random?: Random): number;
}

export function compileDestinations<D extends RouteDestination>(list: readonly D[]): DestinationPicker<D> {
  if (list.length === 0) throw new RangeError('a route needs at least one destination');
  const even = list.every((d) => d.weight === undefined);
  const destinations: D[] = [];
  const cumulative: number[] = [];
  let total = 0;
  for (const d of list) {
    const w = even ? 1 : (d.weight ?? 0);
    if (w <= 0) continue;
    total += w;
    destinations.push(d);
    cumulative.push(total);
  }
  if (destinations.length === 0) throw new RangeError('every destination of the route has weight 0');
  const single = destinations.length === 1;
  const pickIndex = (random: Random = Math.random): number => {
    if (single) return 0;
    const x = random() * total;
    // Few destinations: a linear scan beats a binary search.
    for (let i = 0; i < cumulative.length; i++) if (x < (cumulative[i] as number)) return i;
    return destinations.length - 1;
  };
  return {
    destinations,
    cumulative,
    total,
    pickIndex,
    pick: (random?: Random): D => destinations[pickIndex(random)] as D,
  };
}
