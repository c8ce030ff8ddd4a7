import type { Endpoint } from './endpoint.ts';
import { hash32 } from './hash.ts';
import { RandomBalancer } from './random.ts';
import type { Balancer, PickContext } from './types.ts';
import { usable } from './usable.ts';

export const RING_HASH_DEFAULTS = {
  /** Istio/Envoy minimumRingSize default. */
  minimumRingSize: 1024,
  /** Envoy's maximum_ring_size default (8M entries). */
  maximumRingSize: 8 * 1024 * 1024,
} as const;

/**
 * The ring reaches minimumRingSize from this many endpoints of equal weight up; each endpoint gets
 * minimumRingSize / 8 points per unit of weight (128 by default: about ±9% spread of load).
 */
export const RING_FILL_ENDPOINTS = 8;

/** Bound on one endpoint's points, whatever its weight ratio. */
const MAX_POINTS_PER_ENDPOINT = 65_536;

export function pointsPerWeight(minimumRingSize: number): number {
  return Math.max(1, Math.ceil(minimumRingSize / RING_FILL_ENDPOINTS));
}

/** Ring positions are packed with the endpoint index into one float64: hash × 2^21 + index. */
const INDEX_BITS = 2 ** 21;

/**
 * Ketama-style ring hash (Envoy's RING_HASH). Each endpoint gets points on a 32-bit ring in
 * proportion to its weight: minimumRingSize / 8 points per unit of weight relative to the lightest
 * endpoint, so the ring holds at least minimumRingSize points from 8 endpoints up. A key goes to the first
 * point clockwise from its hash; an unusable endpoint is skipped by walking on, so only its keys
 * move. Removing 1 of N endpoints moves about 1/N of the keys.
 * Slow start does not apply: changing point counts over time would move keys.
 * Without a hash key (the request lacks the header/cookie...) it picks at random.
 * Memory: 8 bytes per ring point (hash and endpoint index in two Uint32Arrays).
 */
export class RingHashBalancer implements Balancer {
  readonly name = 'RING_HASH';
  readonly #minimumRingSize: number;
  readonly #fallback: RandomBalancer;
  #list: readonly Endpoint[] | undefined;
  #hashes = new Uint32Array(0);
  #owners = new Uint32Array(0);

  constructor(
    minimumRingSize: number = RING_HASH_DEFAULTS.minimumRingSize,
    random: () => number = Math.random,
  ) {
    this.#minimumRingSize = Math.min(Math.max(1, minimumRingSize), RING_HASH_DEFAULTS.maximumRingSize);
    this.#fallback = new RandomBalancer(random, (ep) => ep.weight);
  }

  /** Number of points on the ring (for tests and the snapshot). */
  get ringSize(): number {
    return this.#hashes.length;
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#list = endpoints;
    const n = Math.min(endpoints.length, INDEX_BITS);
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const w = (endpoints[i] as Endpoint).weight;
      if (w > 0 && w < min) min = w;
    }
    if (n === 0 || min === Number.POSITIVE_INFINITY) {
      this.#hashes = new Uint32Array(0);
      this.#owners = new Uint32Array(0);
      return;
    }
    // Points per endpoint depend only on its weight (relative to the lightest) and the config,
    // never on how many endpoints there are: otherwise removing one endpoint would add points to
    // all the others and move their keys too (Envoy's ring scales with the total and does that).
    const perUnit = pointsPerWeight(this.#minimumRingSize);
    const counts = new Uint32Array(n);
    let size = 0;
    for (let i = 0; i < n; i++) {
      const c = Math.min(
        MAX_POINTS_PER_ENDPOINT,
        Math.max(1, Math.round(((endpoints[i] as Endpoint).weight / min) * perUnit)),
      );
      counts[i] = c;
      size += c;
    }
    if (size > RING_HASH_DEFAULTS.maximumRingSize) {
      const f = RING_HASH_DEFAULTS.maximumRingSize / size;
      size = 0;
      for (let i = 0; i < n; i++) {
        counts[i] = Math.max(1, Math.floor((counts[i] as number) * f));
        size += counts[i] as number;
      }
    }
    const packed = new Float64Array(size);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const address = (endpoints[i] as Endpoint).address;
      for (let r = 0; r < (counts[i] as number); r++)
        packed[k++] = hash32(`${address}_${r}`) * INDEX_BITS + i;
    }
    packed.sort();
    const hashes = new Uint32Array(size);
    const owners = new Uint32Array(size);
    for (let j = 0; j < size; j++) {
      const v = packed[j] as number;
      const h = Math.floor(v / INDEX_BITS);
      hashes[j] = h;
      owners[j] = v - h * INDEX_BITS;
    }
    this.#hashes = hashes;
    this.#owners = owners;
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    if (endpoints !== this.#list) this.update(endpoints);
    if (ctx.hashKey === undefined) return this.#fallback.pick(endpoints, ctx);
    const hashes = this.#hashes;
    const size = hashes.length;
    if (size === 0) return undefined;
    const h = hash32(ctx.hashKey);
    let lo = 0;
    let hi = size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((hashes[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    for (let step = 0; step < size; step++) {
      const ep = endpoints[this.#owners[(lo + step) % size] as number] as Endpoint;
      if (usable(ep, ctx)) return ep;
    }
    return undefined;
  }
}
