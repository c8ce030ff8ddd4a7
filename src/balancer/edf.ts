import type { Endpoint } from './endpoint.ts';
import type { PickContext } from './types.ts';
import { usable, type WeightFn } from './usable.ts';

/**
 * Earliest-deadline-first weighted scheduling (stride scheduling, as Envoy's weighted round robin):
 * each endpoint has a deadline; the earliest is picked and its deadline moves on by 1 / weight.
 * Deadlines start at half a stride, which interleaves (weights 5,1,1: a a a b c a a pattern family).
 * O(log n) per pick with a binary heap; weights are read at pick time, so slow start applies.
 * An unusable endpoint met at the top loses its turn (its deadline moves on as if picked), so it
 * comes back at its normal pace, without a burst, when it is usable again. The cost grows with the
 * share of unusable endpoints: 1 / (1 − share) pops per pick on average.
 * Memory: 12 bytes per endpoint.
 */
export class EdfScheduler {
  readonly #weight: WeightFn;
  #deadline = new Float64Array(0);
  #heap = new Int32Array(0);
  #size = 0;

  constructor(weight: WeightFn) {
    this.#weight = weight;
  }

  reset(endpoints: readonly Endpoint[], now: number): void {
    const n = endpoints.length;
    this.#deadline = new Float64Array(n);
    this.#heap = new Int32Array(n);
    this.#size = 0;
    for (let i = 0; i < n; i++) {
      const w = this.#weight(endpoints[i] as Endpoint, now);
      this.#deadline[i] = w > 0 ? 0.5 / w : Number.MAX_VALUE;
      this.#push(i);
    }
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const aside: number[] = [];
    let found: Endpoint | undefined;
    while (this.#size > 0) {
      const i = this.#pop();
      const ep = endpoints[i] as Endpoint;
      const w = this.#weight(ep, ctx.now);
      this.#deadline[i] = (this.#deadline[i] as number) + (w > 0 ? 1 / w : Number.MAX_VALUE);
      if (!usable(ep, ctx)) {
        aside.push(i);
        // Bounded: one lap over the whole heap at most.
        if (aside.length >= endpoints.length) break;
        continue;
      }
      this.#push(i);
      found = ep;
      break;
    }
    for (const i of aside) this.#push(i);
    return found;
  }

  #less(a: number, b: number): boolean {
    const da = this.#deadline[a] as number;
    const db = this.#deadline[b] as number;
    return da < db || (da === db && a < b);
  }

  #push(i: number): void {
    const heap = this.#heap;
    let k = this.#size++;
    heap[k] = i;
    while (k > 0) {
      const parent = (k - 1) >> 1;
      if (!this.#less(heap[k] as number, heap[parent] as number)) break;
      const t = heap[k] as number;
      heap[k] = heap[parent] as number;
      heap[parent] = t;
      k = parent;
    }
  }

  #pop(): number {
    const heap = this.#heap;
    const top = heap[0] as number;
    const last = heap[--this.#size] as number;
    if (this.#size > 0) {
      heap[0] = last;
      let k = 0;
      for (;;) {
        const l = 2 * k + 1;
        if (l >= this.#size) break;
        const r = l + 1;
        const c = r < this.#size && this.#less(heap[r] as number, heap[l] as number) ? r : l;
        if (!this.#less(heap[c] as number, heap[k] as number)) break;
        const t = heap[k] as number;
        heap[k] = heap[c] as number;
        heap[c] = t;
        k = c;
      }
    }
    return top;
  }
}
