import type { Endpoint } from './endpoint.ts';
import { failurePenalty } from './failure-rate.ts';
import {
  COLD_ROW,
  DRAINING,
  EFFECTIVE_WEIGHT,
  EJECTED_UNTIL,
  FLAGS,
  HEALTHY,
  INFLIGHT,
  ROW,
  SAMPLED,
  tables,
} from './load-table.ts';
import { ewmaEstimate } from './peak-ewma.ts';
import type { Balancer, PickContext } from './types.ts';
import { defaultWeight, usable, type WeightFn } from './usable.ts';

/** How many random draws P2C makes to find a usable endpoint before it falls back to a scan (Finagle maxEffort). */
const MAX_EFFORT = 5;
/**
 * From this many endpoints on, picks read the load table's rows. Below, the endpoint objects
 * stay in the CPU caches anyway and reading them directly measured a little faster.
 */
const ROWS_FROM = 128;

/**
 * Power of two choices (P2C): draw two distinct usable endpoints at random and keep the one with
 * the lower cost. `cost` is the load metric (peak-EWMA by default) divided by the endpoint's weight.
 * O(1) per pick; an O(n) scan only when random draws keep hitting unusable endpoints.
 * Holds no per-endpoint state of its own: for the list it was last given (`update`, or the first
 * pick of a new list) it keeps where each endpoint's row of the load table is (load-table.ts), so
 * that with the built-in costs and weights, from ROWS_FROM endpoints on, a pick reads two rows and
 * touches no endpoint object but the one it returns (and those of `ctx.exclude`, a retry's).
 * Same draws, same choices.
 */
export class P2CBalancer implements Balancer {
  readonly name: string;
  readonly #cost: (ep: Endpoint, now: number) => number;
  readonly #random: () => number;
  readonly #weight: WeightFn;
  /** 1: peak-EWMA, 2: least request, 0: another cost (read through the endpoint objects). */
  readonly #rowCost: 0 | 1 | 2;
  readonly #rowWeight: boolean;
  #list: readonly Endpoint[] | undefined;
  /** Where each endpoint of `#list` has its row in the load table. */
  #rows = new Int32Array(0);

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
    this.#rowCost = cost === peakEwmaCost ? 1 : cost === leastRequestCost ? 2 : 0;
    this.#rowWeight = weight === defaultWeight;
  }

  update(endpoints: readonly Endpoint[]): void {
    const n = endpoints.length;
    const rows = new Int32Array(n);
    for (let i = 0; i < n; i++) rows[i] = (endpoints[i] as Endpoint).load.o / ROW;
    this.#rows = rows;
    this.#list = endpoints;
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const n = endpoints.length;
    if (n === 0) return undefined;
    if (n === 1) return usable(endpoints[0] as Endpoint, ctx) ? endpoints[0] : undefined;
    if (this.#rowCost !== 0 && n >= ROWS_FROM) {
      if (endpoints !== this.#list) this.update(endpoints);
      return this.#pickRows(endpoints, ctx);
    }
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

  /** `pick` over the load table's rows: the same draws and the same comparison as above. */
  #pickRows(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const t = tables.hot;
    const a = this.#drawRow(t, endpoints, ctx, -1);
    if (a < 0) return undefined;
    const b = this.#drawRow(t, endpoints, ctx, a);
    if (b < 0) return endpoints[a];
    const now = ctx.now;
    const ra = this.#rows[a] as number;
    const rb = this.#rows[b] as number;
    const costA = this.#costRow(t, ra, now) / this.#weightRow(t, endpoints, a, ra, now);
    const costB = this.#costRow(t, rb, now) / this.#weightRow(t, endpoints, b, rb, now);
    return costB < costA ? endpoints[b] : endpoints[a];
  }

  #drawRow(t: Float64Array, endpoints: readonly Endpoint[], ctx: PickContext, not: number): number {
    const n = endpoints.length;
    const exclude = ctx.exclude !== undefined && ctx.exclude.size > 0 ? ctx.exclude : undefined;
    const panic = ctx.panic === true;
    const now = ctx.now;
    const rows = this.#rows;
    for (let i = 0; i < MAX_EFFORT; i++) {
      const k = Math.floor(this.#random() * n);
      if (k !== not && usableRow(t, rows[k] as number, panic, now) && !exclude?.has(endpoints[k] as Endpoint))
        return k;
    }
    const start = Math.floor(this.#random() * n);
    for (let i = 0; i < n; i++) {
      const k = (start + i) % n;
      if (k !== not && usableRow(t, rows[k] as number, panic, now) && !exclude?.has(endpoints[k] as Endpoint))
        return k;
    }
    return -1;
  }

  #costRow(t: Float64Array, row: number, now: number): number {
    const o = row * ROW;
    const inflight = t[o + INFLIGHT] as number;
    if (this.#rowCost === 2) return inflight + 1;
    // peakEwmaCost, from the row
    if (((t[o + FLAGS] as number) & SAMPLED) === 0 && inflight === 0) return 0;
    return ewmaEstimate(t, o, now) * (inflight + 1) * failurePenalty(o, row * COLD_ROW, now);
  }

  #weightRow(t: Float64Array, endpoints: readonly Endpoint[], k: number, row: number, now: number): number {
    if (!this.#rowWeight) return this.#weight(endpoints[k] as Endpoint, now);
    return t[row * ROW + EFFECTIVE_WEIGHT] as number;
  }
}

/** `usable()` read from row `row` (exclusions apart). */
function usableRow(t: Float64Array, row: number, panic: boolean, now: number): boolean {
  const o = row * ROW;
  if (((t[o + FLAGS] as number) & (HEALTHY | DRAINING)) !== HEALTHY) return false;
  return panic || (t[o + EJECTED_UNTIL] as number) <= now;
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
