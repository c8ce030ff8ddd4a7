import type { Endpoint } from './endpoint.ts';
import type { Balancer, PickContext } from './types.ts';
import { defaultWeight, usable, type WeightFn } from './usable.ts';

/** How many random draws P2C makes to find a usable endpoint before it falls back to a scan (Finagle maxEffort). */
const MAX_EFFORT = 5;

/**
 * Power of two choices (P2C): draw two distinct usable endpoints at random and keep the one with
 * the lower cost. `cost` is the load metric (peak-EWMA by default) divided by the endpoint's weight.
 * O(1) per pick; an O(n) scan only when random draws keep hitting unusable endpoints.
 * Holds no per-endpoint state.
 */
export class P2CBalancer implements Balancer {
  readonly name: string;
  readonly #cost: (ep: Endpoint, now: number) => number;
  readonly #random: () => number;
  readonly #weight: WeightFn;

  constructor(
    name: string,
    cost: (ep: Endpoint, now: number) => number,
    random: () => number = Math.random,
    weight: WeightFn = defaultWeight,
  ) {
    this.name = name;
    this.#cost = cost;
    this.#random = random;
    this.#weight = weight;
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const n = endpoints.length;
    if (n === 0) return undefined;
    if (n === 1) return usable(endpoints[0] as Endpoint, ctx) ? endpoints[0] : undefined;
    const a = this.#draw(endpoints, ctx, undefined);
    if (!a) return undefined;
    const b = this.#draw(endpoints, ctx, a);
    if (!b) return a;
    const costA = this.#cost(a, ctx.now) / this.#weight(a, ctx.now);
    const costB = this.#cost(b, ctx.now) / this.#weight(b, ctx.now);
    return costB < costA ? b : a;
  }

  #draw(endpoints: readonly Endpoint[], ctx: PickContext, not: Endpoint | undefined): Endpoint | undefined {
    const n = endpoints.length;
    for (let i = 0; i < MAX_EFFORT; i++) {
      const ep = endpoints[Math.floor(this.#random() * n)] as Endpoint;
      if (ep !== not && usable(ep, ctx)) return ep;
    }
    const start = Math.floor(this.#random() * n);
    for (let i = 0; i < n; i++) {
      const ep = endpoints[(start + i) % n] as Endpoint;
      if (ep !== not && usable(ep, ctx)) return ep;
    }
    return undefined;
  }
}

/**
 * PEAK_EWMA cost: rtt estimate × (in-flight + 1) × 1 / (1 − recent failure share), so an endpoint
 * that answers fast but fails (a fast 503 looks fast) costs what its successes cost. An endpoint with no RTT sample yet and nothing in flight costs 0, so it gets
 * one probe request at once (as Finagle probes unknown endpoints) instead of waiting until the
 * estimates of endpoints already known to be fast decay below the 30 ms default; while that
 * probe is in flight it costs default × 2 like any other, so a new endpoint is never flooded.
 */
export const peakEwmaCost = (ep: Endpoint, now: number): number =>
  !ep.ewma.sampled && ep.inflight === 0 ? 0 : ep.ewma.cost(ep.inflight, now) * ep.failures.penalty(now);

/** LEAST_REQUEST cost: in-flight + 1 (the +1 lets weights break ties between idle endpoints). */
export const leastRequestCost = (ep: Endpoint): number => ep.inflight + 1;
