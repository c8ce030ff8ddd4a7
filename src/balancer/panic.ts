import { AvailabilityCount } from './availability.ts';
import type { Endpoint } from './endpoint.ts';
import type { Balancer, PickContext } from './types.ts';

/** Envoy's healthy_panic_threshold default (percent). */
export const DEFAULT_PANIC_THRESHOLD = 50;

/**
 * The outermost balancer wrapper.
 * - Panic mode (Envoy): when fewer than `thresholdPct` % of the (non-draining) endpoints are
 *   available, picks with `ctx.panic` set, so health and ejection are ignored: a mass ejection or
 *   a flapping health check must not pile all traffic onto the few that are left. 0 disables it.
 * - `ctx.exclude` is a preference: when every candidate is excluded, picks again without it
 *   (a retry then reuses an endpoint rather than failing).
 */
export class PanicGuard implements Balancer {
  readonly name: string;
  readonly #inner: Balancer;
  readonly #threshold: number;
  readonly #count = new AvailabilityCount();

  constructor(inner: Balancer, thresholdPct: number = DEFAULT_PANIC_THRESHOLD) {
    this.#inner = inner;
    this.#threshold = thresholdPct;
    this.name = inner.name;
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#count.invalidate();
    this.#inner.update?.(endpoints);
  }

  weightOf(ep: Endpoint, now: number): number {
    return ep.effectiveWeight(now);
  }

  /** True when picks at `now` ignore health (for tests and the snapshot). */
  inPanic(endpoints: readonly Endpoint[], now: number): boolean {
    if (this.#threshold <= 0) return false;
    const c = this.#count.refresh(endpoints, now);
    return c.total > 0 && c.available * 100 < this.#threshold * c.total;
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    const c = this.inPanic(endpoints, ctx.now) ? { ...ctx, panic: true } : ctx;
    const ep = this.#inner.pick(endpoints, c);
    if (ep || !ctx.exclude || ctx.exclude.size === 0) return ep;
    return this.#inner.pick(endpoints, { ...c, exclude: undefined });
  }
}
