import { AVAILABILITY_REFRESH_MS } from './availability.ts';
import { EdfScheduler } from './edf.ts';
import type { Endpoint } from './endpoint.ts';
import type { Balancer, PickContext } from './types.ts';
import { defaultWeight, usable, type WeightFn } from './usable.ts';

/**
 * Smooth weighted round robin (the algorithm of nginx's upstream module): every pick, each usable
 * endpoint's `current` grows by its weight; the largest wins and loses the total. Weights 5,1,1
 * give a a b a c a a rather than a a a a a b c. O(n) per pick; one float per endpoint.
 * When every endpoint has the same weight (checked every AVAILABILITY_REFRESH_MS and on update),
 * the sequence is a plain rotation, and it takes the O(1) path: a cursor skipping unusable ones.
 * Above SMOOTH_MAX_ENDPOINTS endpoints with unequal weights, it switches to EDF scheduling
 * (Envoy's weighted round robin, O(log n)): the same proportions and interleaving, though not
 * nginx's exact sequence.
 * Its state is aligned with the endpoint list and reset when the list changes.
 */
/** Up to this many endpoints, weighted picks use nginx's O(n) algorithm; above, EDF. */
export const SMOOTH_MAX_ENDPOINTS = 256;

export class RoundRobinBalancer implements Balancer {
  readonly name = 'ROUND_ROBIN';
  readonly #weight: WeightFn;
  #list: readonly Endpoint[] | undefined;
  #current = new Float64Array(0);
  #cursor = 0;
  #uniform = false;
  #checkedAt = Number.NEGATIVE_INFINITY;
  readonly #edf: EdfScheduler;
  #edfReady = false;

  constructor(weight: WeightFn = defaultWeight) {
    this.#weight = weight;
    this.#edf = new EdfScheduler(weight);
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#list = endpoints;
    this.#current = new Float64Array(endpoints.length);
    this.#cursor = 0;
    this.#checkedAt = Number.NEGATIVE_INFINITY;
    this.#edfReady = false;
  }

  #checkUniform(endpoints: readonly Endpoint[], now: number): void {
    if (now >= this.#checkedAt && now - this.#checkedAt < AVAILABILITY_REFRESH_MS) return;
    this.#checkedAt = now;
    let first = Number.NaN;
    let uniform = true;
    for (const ep of endpoints) {
      if (ep.draining) continue;
      const w = this.#weight(ep, now);
      if (Number.isNaN(first)) first = w;
      else if (Math.abs(w - first) > 1e-9 * first) {
        uniform = false;
        break;
      }
    }
    if (uniform && !this.#uniform) this.#cursor = 0;
    if (!uniform && this.#uniform) {
      this.#current.fill(0);
      this.#edfReady = false;
    }
    this.#uniform = uniform;
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    if (endpoints !== this.#list) this.update(endpoints);
    this.#checkUniform(endpoints, ctx.now);
    if (this.#uniform) {
      const n = endpoints.length;
      for (let i = 0; i < n; i++) {
        const at = this.#cursor;
        this.#cursor = at + 1 >= n ? 0 : at + 1;
        const ep = endpoints[at] as Endpoint;
        if (usable(ep, ctx)) return ep;
      }
      return undefined;
    }
    if (endpoints.length > SMOOTH_MAX_ENDPOINTS) {
      if (!this.#edfReady) {
        this.#edf.reset(endpoints, ctx.now);
        this.#edfReady = true;
      }
      return this.#edf.pick(endpoints, ctx);
    }
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
