import type { Endpoint } from '../balancer/endpoint.ts';
import type { OutlierDetectionConfig } from '../balancer/outlier-schema.ts';

/** Istio / Envoy / gRPC A50 defaults (docs/resilience.md). */
export const OUTLIER_DEFAULTS = {
  consecutive5xxErrors: 5,
  consecutiveGatewayErrors: 0,
  consecutiveLocalOriginFailures: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
  minHealthPercent: 0,
  successRateMinimumHosts: 5,
  successRateRequestVolume: 100,
  successRateStdevFactor: 1900,
  enforcingSuccessRate: 100,
  failurePercentageThreshold: 85,
  failurePercentageMinimumHosts: 5,
  failurePercentageRequestVolume: 50,
  enforcingFailurePercentage: 0,
} as const;

export type OutlierSettings = {
  -readonly [K in keyof typeof OUTLIER_DEFAULTS]: number;
} & {
  splitLocalOrigin: boolean;
  /** outlierDetectionHttpErrorCodes: the statuses that count as failures; undefined = every 5xx. */
  errorCodes?: ReadonlySet<number> | undefined;
};

export function outlierSettings(cfg: OutlierDetectionConfig | undefined): OutlierSettings | undefined {
  if (cfg?.enabled === false) return undefined;
  const d = OUTLIER_DEFAULTS;
  return {
    consecutive5xxErrors: cfg?.consecutive5xxErrors ?? d.consecutive5xxErrors,
    consecutiveGatewayErrors: cfg?.consecutiveGatewayErrors ?? d.consecutiveGatewayErrors,
    consecutiveLocalOriginFailures: cfg?.consecutiveLocalOriginFailures ?? d.consecutiveLocalOriginFailures,
    splitLocalOrigin: cfg?.consecutiveLocalOriginFailures !== undefined,
    errorCodes: cfg?.outlierDetectionHttpErrorCodes ? new Set(cfg.outlierDetectionHttpErrorCodes) : undefined,
    intervalMs: cfg?.interval ?? d.intervalMs,
    baseEjectionTimeMs: cfg?.baseEjectionTime ?? d.baseEjectionTimeMs,
    maxEjectionTimeMs: cfg?.maxEjectionTime ?? d.maxEjectionTimeMs,
    maxEjectionPercent: cfg?.maxEjectionPercent ?? d.maxEjectionPercent,
    minHealthPercent: cfg?.minHealthPercent ?? d.minHealthPercent,
    successRateMinimumHosts: cfg?.successRateMinimumHosts ?? d.successRateMinimumHosts,
    successRateRequestVolume: cfg?.successRateRequestVolume ?? d.successRateRequestVolume,
    successRateStdevFactor: cfg?.successRateStdevFactor ?? d.successRateStdevFactor,
    enforcingSuccessRate: cfg?.enforcingSuccessRate ?? d.enforcingSuccessRate,
    failurePercentageThreshold: cfg?.failurePercentageThreshold ?? d.failurePercentageThreshold,
    failurePercentageMinimumHosts: cfg?.failurePercentageMinimumHosts ?? d.failurePercentageMinimumHosts,
    failurePercentageRequestVolume: cfg?.failurePercentageRequestVolume ?? d.failurePercentageRequestVolume,
    enforcingFailurePercentage: cfg?.enforcingFailurePercentage ?? d.enforcingFailurePercentage,
  };
}

/** One attempt's result as outlier detection counts it. */
export type OutlierResult = 'success' | '5xx' | 'gateway' | 'local';

interface HostState {
  c5xx: number;
  cGateway: number;
  cLocal: number;
  /** Times ejected; decays by one per interval spent not ejected (Envoy). */
  ejections: number;
  ok: number;
  failed: number;
}

export interface WindowStat {
  ok: number;
  failed: number;
}

/** A50 success-rate: indexes of hosts whose success rate < mean − factor × stdev. */
export function successRateOutliers(
  stats: readonly WindowStat[],
  minimumHosts: number,
  requestVolume: number,
  stdevFactor: number,
): number[] {
  const rates: [number, number][] = [];
  stats.forEach((s, i) => {
    if (s.ok + s.failed >= requestVolume) rates.push([i, s.ok / (s.ok + s.failed)]);
  });
  if (rates.length < minimumHosts) return [];
  const mean = rates.reduce((a, [, r]) => a + r, 0) / rates.length;
  const variance = rates.reduce((a, [, r]) => a + (r - mean) ** 2, 0) / rates.length;
  const threshold = mean - (stdevFactor / 1000) * Math.sqrt(variance);
  return rates.filter(([, r]) => r < threshold).map(([i]) => i);
}

/** A50 failure-percentage: indexes of hosts whose failure % > threshold. */
export function failurePercentageOutliers(
  stats: readonly WindowStat[],
  minimumHosts: number,
  requestVolume: number,
  thresholdPercent: number,
): number[] {
  const eligible = stats.map((s, i) => [i, s] as const).filter(([, s]) => s.ok + s.failed >= requestVolume);
  if (eligible.length < minimumHosts) return [];
  return eligible.filter(([, s]) => (100 * s.failed) / (s.ok + s.failed) > thresholdPercent).map(([i]) => i);
}

/** Ejection time for the n-th ejection: base × n, capped at max (and at least base). */
export function ejectionTimeMs(base: number, max: number, ejections: number): number {
  return Math.min(base * ejections, Math.max(base, max));
}

/**
 * Outlier detection for one service. Consecutive-error ejection happens on the failing answer;
 * the interval work (A50 rates, ejection-multiplier decay) runs lazily on the first outcome
 * after each interval, so there is no timer. Ejection sets Endpoint.ejectedUntil; an ejected
 * endpoint returns on its own once that time passes.
 */
export class OutlierDetector {
  readonly settings: OutlierSettings;
  readonly #hosts = new WeakMap<Endpoint, HostState>();
  readonly #random: () => number;
  #nextInterval: number;
  ejectionsTotal = 0;

  /** Called on each ejection (the service logs it). */
  onEject: ((ep: Endpoint, untilMs: number, reason: string) => void) | undefined;

  constructor(settings: OutlierSettings, now: number, random: () => number = Math.random) {
    this.settings = settings;
    this.#nextInterval = now + settings.intervalMs;
    this.#random = random;
  }

  #state(ep: Endpoint): HostState {
    let s = this.#hosts.get(ep);
    if (!s) {
      s = { c5xx: 0, cGateway: 0, cLocal: 0, ejections: 0, ok: 0, failed: 0 };
      this.#hosts.set(ep, s);
    }
    return s;
  }

  /** Records one outcome of `ep`; `all` is the service's endpoint list. */
  observe(ep: Endpoint, outcome: OutlierResult, all: readonly Endpoint[], now: number): void {
    if (now >= this.#nextInterval) this.#interval(all, now);
    const s = this.#state(ep);
    const cfg = this.settings;
    if (outcome === 'success') {
      s.ok++;
      s.c5xx = 0;
      s.cGateway = 0;
      s.cLocal = 0;
      return;
    }
    s.failed++;
    // The setting whose counter tripped names the ejection (the admin page and logs show it).
    let reason: string | undefined;
    if (outcome === 'local') {
      s.cLocal++;
      if (
        cfg.splitLocalOrigin &&
        cfg.consecutiveLocalOriginFailures > 0 &&
        s.cLocal >= cfg.consecutiveLocalOriginFailures
      )
        reason = 'consecutiveLocalOriginFailures';
    }
    // Without the split, a local-origin failure counts as a 5xx and a gateway error (Envoy).
    if (outcome === '5xx' || outcome === 'gateway' || (outcome === 'local' && !cfg.splitLocalOrigin)) {
      s.c5xx++;
      if (outcome !== '5xx') {
        s.cGateway++;
        if (
          reason === undefined &&
          cfg.consecutiveGatewayErrors > 0 &&
          s.cGateway >= cfg.consecutiveGatewayErrors
        )
          reason = 'consecutiveGatewayErrors';
      }
      if (reason === undefined && cfg.consecutive5xxErrors > 0 && s.c5xx >= cfg.consecutive5xxErrors)
        reason = 'consecutive5xxErrors';
    }
    if (reason !== undefined) this.#eject(ep, s, all, now, reason);
  }

  #eject(ep: Endpoint, s: HostState, all: readonly Endpoint[], now: number, reason: string): boolean {
    if (ep.isEjected(now)) return false;
    const total = all.length;
    if (total === 0) return false;
    let ejected = 0;
    let healthy = 0;
    for (const e of all) {
      if (e.isEjected(now)) ejected++;
      else if (e.healthy) healthy++;
    }
    // maxEjectionPercent, but at least one host can always be ejected (Envoy).
    if (ejected > 0 && (100 * (ejected + 1)) / total > this.settings.maxEjectionPercent) return false;
    // Never eject the last available endpoint: failing every request for the ejection time is
    // worse than sending to it (stands in for Envoy's panic threshold, see docs/resilience.md).
    if (healthy <= 1) return false;
    if ((100 * healthy) / total < this.settings.minHealthPercent) return false;
    s.ejections++;
    s.c5xx = 0;
    s.cGateway = 0;
    s.cLocal = 0;
    ep.ejectedUntil =
      now + ejectionTimeMs(this.settings.baseEjectionTimeMs, this.settings.maxEjectionTimeMs, s.ejections);
    this.ejectionsTotal++;
    this.onEject?.(ep, ep.ejectedUntil - now, reason);
    return true;
  }

  #interval(all: readonly Endpoint[], now: number): void {
    const cfg = this.settings;
    this.#nextInterval = now + cfg.intervalMs;
    const stats = all.map((ep) => this.#state(ep));
    // Index → the check that flagged it: `successRate` or `failurePercentage` (the A50 names).
    const candidates = new Map<number, string>();
    if (cfg.enforcingSuccessRate > 0)
      for (const i of successRateOutliers(
        stats,
        cfg.successRateMinimumHosts,
        cfg.successRateRequestVolume,
        cfg.successRateStdevFactor,
      ))
        if (this.#random() * 100 < cfg.enforcingSuccessRate) candidates.set(i, 'successRate');
    if (cfg.enforcingFailurePercentage > 0)
      for (const i of failurePercentageOutliers(
        stats,
        cfg.failurePercentageMinimumHosts,
        cfg.failurePercentageRequestVolume,
        cfg.failurePercentageThreshold,
      ))
        if (this.#random() * 100 < cfg.enforcingFailurePercentage && !candidates.has(i))
          candidates.set(i, 'failurePercentage');
    for (const [i, reason] of candidates)
      this.#eject(all[i] as Endpoint, stats[i] as HostState, all, now, reason);
    for (let i = 0; i < all.length; i++) {
      const s = stats[i] as HostState;
      if (!(all[i] as Endpoint).isEjected(now) && s.ejections > 0 && !candidates.has(i)) s.ejections--;
      s.ok = 0;
      s.failed = 0;
    }
  }
}
