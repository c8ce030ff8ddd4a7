import type { Endpoint } from './endpoint.ts';
import type { Balancer, PickContext } from './types.ts';
import { defaultWeight, usable, type WeightFn } from './usable.ts';

/** Uniform draws tried (rejection sampling) before falling back to an O(n) weighted scan. */
const MAX_DRAWS = 32;

/**
 * Weighted random. Draws an endpoint uniformly and accepts it with probability weight / maxWeight
 * (rejection sampling): O(1) expected when weights are of the same order, no per-endpoint state.
 * After MAX_DRAWS rejections it does an exact O(n) weighted draw over the usable endpoints.
 */
export class RandomBalancer implements Balancer {
  readonly name = 'RANDOM';
  readonly #random: () => number;
  readonly #weight: WeightFn;
  #list: readonly Endpoint[] | undefined;
  #maxWeight = 1;

  constructor(random: () => number = Math.random, weight: WeightFn = defaultWeight) {
    this.#random = random;
    this.#weight = weight;
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#list = endpoints;
    let max = 0;
    for (const ep of endpoints) if (ep.weight > max) max = ep.weight;
    this.#maxWeight = max > 0 ? max : 1;
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const n = endpoints.length;
    if (n === 0) return undefined;
    if (endpoints !== this.#list) this.update(endpoints);
    for (let i = 0; i < MAX_DRAWS; i++) {
      const ep = endpoints[Math.floor(this.#random() * n)] as Endpoint;
      if (!usable(ep, ctx)) continue;
      // Weights can grow after update() (discovery updates in place): cap the acceptance at 1.
      if (this.#random() * this.#maxWeight < this.#weight(ep, ctx.now)) return ep;
    }
    let total = 0;
    for (const ep of endpoints) if (usable(ep, ctx)) total += this.#weight(ep, ctx.now);
    if (total <= 0) return undefined;
    let r = this.#random() * total;
    let last: Endpoint | undefined;
    for (const ep of endpoints) {
      if (!usable(ep, ctx)) continue;
      last = ep;
      r -= this.#weight(ep, ctx.now);
      if (r < 0) return ep;
    }
    return last;
  }
}
