import type { Endpoint } from './endpoint.ts';

/** What a balancer needs to know about one request to pick for it. */
export interface PickContext {
  /** Endpoints to avoid (already tried by this request). Avoided, not forbidden, when nothing else is left. */
  readonly exclude?: ReadonlySet<Endpoint> | undefined;
  /** Key for consistent hashing, when the policy has one. */
  readonly hashKey?: string | undefined;
  /** Monotonic milliseconds (performance.now() or a fake clock). */
  readonly now: number;
  /**
   * Set by the panic guard: too few endpoints are available, so health and ejection are ignored
   * (draining endpoints are still skipped). Balancers check endpoints through `usable()`.
   */
  readonly panic?: boolean | undefined;
}

/**
 * A balancer only compares loads. It sees the endpoint list (owned by the EndpointSet, rebuilt
 * on each discovery change) and returns one endpoint, or undefined when none is usable.
 * Picks must be O(1) for P2C algorithms.
 */
export interface Balancer {
  readonly name: string;
  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined;
  /** Called after the endpoint list changed (rebuild rings, schedules...). */
  update?(endpoints: readonly Endpoint[]): void;
  /** The weight this balancer gives `ep` at `now` (slow start included), for the snapshot. */
  weightOf?(ep: Endpoint, now: number): number;
}
