import type { Endpoint } from './endpoint.ts';
import type { PickContext } from './types.ts';

/** The weight a balancer uses for one endpoint at `now` (slow start plugs in here). */
export type WeightFn = (ep: Endpoint, now: number) => number;

export const defaultWeight: WeightFn = (ep, now) => ep.effectiveWeight(now);

/**
 * Can this pick use `ep`? Never a draining endpoint (discovery removed it) nor an excluded one;
 * in panic mode health and ejection are ignored.
 */
export function usable(ep: Endpoint, ctx: PickContext): boolean {
  if (ctx.exclude?.has(ep)) return false;
  return ctx.panic ? !ep.draining && ep.healthy : ep.isAvailable(ctx.now);
}
