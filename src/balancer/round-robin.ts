import type { Endpoint } from './endpoint.ts';
import type { Balancer, PickContext } from './types.ts';
import { defaultWeight, usable, type WeightFn } from './usable.ts';

/**
 * Smooth weighted round robin (the algorithm of nginx's upstream module): every pick, each usable
 * endpoint's `current` grows by its weight; the largest wins and loses the total. Weights 5,1,1
 * give a a b a c a a rather than a a a a a b c. O(n) per pick; one float per endpoint.
 * Its state is aligned with the endpoint list and reset when the list changes.
 */
export class RoundRobinBalancer implements Balancer {
  readonly name = 'ROUND_ROBIN';
  readonly #weight: WeightFn;
  #list: readonly Endpoint[] | undefined;
  #current = new Float64Array(0);

  constructor(weight: WeightFn = defaultWeight) {
    this.#weight = weight;
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#list = endpoints;
    this.#current = new Float64Array(endpoints.length);
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    if (endpoints !== this.#list) this.update(endpoints);
    const current = this.#current;
    let total = 0;
    let best = -1;
    let bestValue = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < endpoints.length; i++) {
      const ep = endpoints[i] as Endpoint;
      if (!usable(ep, ctx)) continue;
      const w = this.#weight(ep, ctx.now);
      total += w;
      const value = (current[i] as number) + w;
      current[i] = value;
      if (value > bestValue) {
        bestValue = value;
        best = i;
      }
    }
    if (best < 0) return undefined;
    current[best] = (current[best] as number) - total;
    return endpoints[best];
  }
}
