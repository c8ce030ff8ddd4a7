import type { Endpoint } from './endpoint.ts';
import type { WeightFn } from './usable.ts';

export interface SlowStartConfig {
  /** Window in ms (Istio warmupDurationSecs / warmup.duration). */
  windowMs: number;
  /** Weight fraction at the start of the window (Envoy/Istio min_weight_percent 10% → 0.1). */
  minFraction: number;
  /** Curve exponent (Envoy/Istio aggression, default 1 = linear). */
  aggression: number;
}

export const SLOW_START_DEFAULTS = { minimumPercent: 10, aggression: 1 } as const;

/**
 * Envoy's slow-start curve: factor = max(minFraction, (age / window)^(1 / aggression)), 1 once the
 * window is over. With aggression 1 the weight grows linearly; with 2 it grows slowly at first.
 */
export function slowStartFactor(ageMs: number, cfg: SlowStartConfig): number {
  if (ageMs >= cfg.windowMs) return 1;
  const t = Math.max(ageMs, 1) / cfg.windowMs;
  const f = cfg.aggression === 1 ? t : t ** (1 / cfg.aggression);
  return Math.max(f, cfg.minFraction);
}

/**
 * A weight function that ramps up endpoints added after the balancer first saw its endpoints.
 * As in Envoy, the endpoints present at start (the first non-empty list) do not go through slow
 * start: they would all be ramped together, which changes nothing but the first window's costs.
 */
export class SlowStartWeight {
  readonly #cfg: SlowStartConfig;
  readonly #base: WeightFn;
  #exemptUpTo = Number.NaN;

  constructor(cfg: SlowStartConfig, base: WeightFn) {
    this.#cfg = cfg;
    this.#base = base;
  }

  /** Records the initial endpoints (called with every list; only the first non-empty one counts). */
  seen(endpoints: readonly Endpoint[]): void {
    if (!Number.isNaN(this.#exemptUpTo) || endpoints.length === 0) return;
    let max = Number.NEGATIVE_INFINITY;
    for (const ep of endpoints) if (ep.addedAt > max) max = ep.addedAt;
    this.#exemptUpTo = max;
  }

  readonly weight: WeightFn = (ep, now) => {
    const w = this.#base(ep, now);
    if (ep.addedAt <= this.#exemptUpTo) return w;
    return w * slowStartFactor(now - ep.addedAt, this.#cfg);
  };
}
