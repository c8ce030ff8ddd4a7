import type { Endpoint } from './endpoint.ts';

/**
 * How long a count of available endpoints is reused (ms). Health and ejection change rarely; this
 * keeps panic and locality decisions O(1) per pick at 10k endpoints. `update()` on the balancer
 * refreshes at once (the endpoint set calls it when health or ejection changes).
 */
export const AVAILABILITY_REFRESH_MS = 100;

/** Counts available vs. non-draining endpoints of one list, cached for AVAILABILITY_REFRESH_MS. */
export class AvailabilityCount {
  #list: readonly Endpoint[] | undefined;
  #at = Number.NEGATIVE_INFINITY;
  available = 0;
  total = 0;

  invalidate(): void {
    this.#list = undefined;
  }

  refresh(list: readonly Endpoint[], now: number): this {
    if (list === this.#list && now >= this.#at && now - this.#at < AVAILABILITY_REFRESH_MS) return this;
    let available = 0;
    let total = 0;
    for (const ep of list) {
      // Failing an active health check counts as unavailable (Envoy's panic threshold and
      // Istio's locality failover both count it); such endpoints are still never picked (usable.ts).
      if (ep.draining) continue;
      total++;
      if (ep.isAvailable(now)) available++;
    }
    this.available = available;
    this.total = total;
    this.#list = list;
    this.#at = now;
    return this;
  }

  /** Available share in [0, 1]; 0 when nothing is left. */
  get share(): number {
    return this.total === 0 ? 0 : this.available / this.total;
  }
}
