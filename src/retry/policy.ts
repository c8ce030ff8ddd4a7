import type { Clock } from '../clock.ts';
import { BACKOFF_DEFAULTS } from './backoff.ts';
import { BUDGET_DEFAULTS, type BudgetSnapshot, RetryBudget } from './budget.ts';
import { DEFAULT_RETRY_ON, parseRetryOn, type RetryOn } from './retry-on.ts';
import type { RetriesConfig, RetryBudgetConfig } from './schema.ts';

/** Defaults with their sources (docs/resilience.md). */
export const RETRY_DEFAULTS = {
  /** Istio: 2 retries when no policy is configured. */
  attempts: 2,
  /** Bound on an honoured Retry-After. */
  retryAfterMaxMs: 2_000,
  /** Backup requests as a fraction of requests (Finagle examples use 1-5%). */
  hedgeMaxExtraLoad: 0.05,
} as const;

export interface RetryPolicy {
  /** Retries after the first attempt (hedges count too). */
  readonly attempts: number;
  readonly retryOn: RetryOn;
  readonly perTryTimeoutMs: number | undefined;
  /** Covers all attempts; undefined = none (Istio's default; undici's 300 s headers/body timeouts still bound it). */
  readonly timeoutMs: number | undefined;
  readonly retryNonIdempotent: boolean;
  readonly retryAfterMaxMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** A retry avoids the endpoints already tried (retryIgnorePreviousHosts, default true). */
  readonly avoidTried: boolean;
  readonly hedge: { readonly delayMs: number; readonly maxExtraLoad: number } | undefined;
}

export interface RetryServiceConfig {
  retries?: RetriesConfig | undefined;
  timeout?: number | undefined;
  retryBudget?: RetryBudgetConfig | undefined;
  trafficPolicy?: {
    connectionPool?: { http?: { maxRetries?: number | undefined } | undefined } | undefined;
    retryBudget?:
      | {
          percent?: number | undefined;
          minRetryConcurrency?: number | undefined;
          budgetInterval?: number | undefined;
        }
      | undefined;
  };
}

export function compileRetryPolicy(cfg: RetryServiceConfig): RetryPolicy {
  const r = cfg.retries;
  return {
    attempts: r?.attempts ?? RETRY_DEFAULTS.attempts,
    retryOn: r?.retryOn ?? (parseRetryOn(DEFAULT_RETRY_ON) as RetryOn),
    perTryTimeoutMs: r?.perTryTimeout || undefined,
    timeoutMs: cfg.timeout || undefined,
    retryNonIdempotent: r?.retryNonIdempotent ?? false,
    retryAfterMaxMs: r?.retryAfterMax ?? RETRY_DEFAULTS.retryAfterMaxMs,
    backoffBaseMs: r?.backoff ?? BACKOFF_DEFAULTS.baseMs,
    // Envoy: the largest backoff is 10 times the base.
    backoffMaxMs: r?.backoff !== undefined ? r.backoff * 10 : BACKOFF_DEFAULTS.maxMs,
    avoidTried: r?.retryIgnorePreviousHosts !== false,
    hedge: r?.hedge
      ? { delayMs: r.hedge.delay, maxExtraLoad: r.hedge.maxExtraLoad ?? RETRY_DEFAULTS.hedgeMaxExtraLoad }
      : undefined,
  };
}

/** Per-service retry state: the compiled policies of one config version, and the budgets. */
export class ServiceRetry {
  readonly policy: RetryPolicy;
  /** Undefined when `retryBudget.enabled: false`. */
  readonly budget: RetryBudget | undefined;
  /** Limits backup requests to maxExtraLoad of requests (no per-second allowance beyond 1/s). */
  readonly hedgeBudget: RetryBudget | undefined;

  /** The retry policy of each `http` route, by route index (a route's retries/timeout win over the service's). */
  readonly routes: readonly RetryPolicy[];

  readonly #counter: { active: number };
  readonly #budgetKey: string;
  readonly #hedgeKey: string;
  /** connectionPool.http.maxRetries: requests that may be retrying at once (Envoy's max_retries). */
  readonly maxRetries: number;
  /** Requests retrying now (each holds one of maxRetries from its first retry to its end). */
  retrying = 0;
  /** Retries not made because maxRetries requests were already retrying (Envoy: upstream_rq_retry_overflow). */
  retryOverflows = 0;
  /**
   * Retries not made because the request is not idempotent (POST, PATCH without Idempotency-Key)
   * and may have reached the server. `retryNonIdempotent: true` allows them.
   */
  nonIdempotentSkipped = 0;
  /** Called the first time a retry is skipped for that reason (the service logs one warning). */
  onNonIdempotentSkip: ((method: string, reason: string) => void) | undefined;

  /** trafficPolicy.retryBudget (Envoy's): retries in flight as a share of the requests. */
  readonly #envoyBudget: { fraction: number; min: number; intervalMs: number } | undefined;
  readonly #clock: Clock;
  /** Requests started in the current and the previous budgetInterval (a sliding estimate). */
  #started = { current: 0, previous: 0, since: 0 };

  /** A request entered the retry layer (counted for retryBudget.budgetInterval). */
  noteStarted(): void {
    const b = this.#envoyBudget;
    if (b === undefined || b.intervalMs <= 0) return;
    this.#roll(this.#clock(), b.intervalMs);
    this.#started.current++;
  }

  #roll(now: number, interval: number): void {
    const s = this.#started;
    if (now - s.since < interval) return;
    s.previous = now - s.since < 2 * interval ? s.current : 0;
    s.current = 0;
    s.since = now;
  }

  /** How many requests may be retrying at once now: maxRetries, and the Envoy retry budget. */
  retryCap(): number {
    const b = this.#envoyBudget;
    if (b === undefined) return this.maxRetries;
    let requests = this.active;
    if (b.intervalMs > 0) {
      const now = this.#clock();
      this.#roll(now, b.intervalMs);
      const s = this.#started;
      const elapsed = Math.min(1, (now - s.since) / b.intervalMs);
      requests = Math.max(requests, Math.round(s.current + s.previous * (1 - elapsed)));
    }
    return Math.min(this.maxRetries, Math.max(b.min, Math.floor(b.fraction * requests)));
  }

  /**
   * Requests in the retry layer now (started and not finished), for the snapshot's checks. Shared
   * by the config versions of a service (`reuse.counter`), so a request counts where it started.
   */
  get active(): number {
    return this.#counter.active;
  }
  set active(n: number) {
    this.#counter.active = n;
  }

  /**
   * `reuse.previous`: the service's previous version (live update); its budget and hedge budget
   * are kept, with their history, when their settings did not change.
   */
  constructor(
    cfg: RetryServiceConfig & {
      http?: readonly { retries?: RetriesConfig | undefined; timeout?: number | undefined }[] | undefined;
    },
    clock: Clock,
    onExhausted?: (snapshot: BudgetSnapshot) => void,
    reuse: { previous?: ServiceRetry | undefined; counter?: { active: number } } = {},
  ) {
    this.#counter = reuse.counter ?? { active: 0 };
    this.policy = compileRetryPolicy(cfg);
    this.maxRetries = cfg.trafficPolicy?.connectionPool?.http?.maxRetries ?? Number.POSITIVE_INFINITY;
    const eb = cfg.trafficPolicy?.retryBudget;
    this.#envoyBudget = eb
      ? {
          fraction: (eb.percent ?? 20) / 100,
          min: eb.minRetryConcurrency ?? 3,
          intervalMs: eb.budgetInterval ?? 0,
        }
      : undefined;
    this.#clock = clock;
    this.routes = (cfg.http ?? []).map((r) =>
      compileRetryPolicy({ retries: r.retries ?? cfg.retries, timeout: r.timeout ?? cfg.timeout }),
    );
    const prev = reuse.previous;
    const b = cfg.retryBudget;
    this.#budgetKey = JSON.stringify(b ?? null);
    this.budget =
      prev && prev.#budgetKey === this.#budgetKey
        ? prev.budget
        : b?.enabled === false
          ? undefined
          : new RetryBudget(
              {
                retryPercent: b?.retryPercent ?? BUDGET_DEFAULTS.retryPercent,
                minRetriesPerSecond: b?.minRetriesPerSecond ?? BUDGET_DEFAULTS.minRetriesPerSecond,
                ttlMs: b?.ttl ?? BUDGET_DEFAULTS.ttlMs,
              },
              clock,
              onExhausted && (() => this.budget && onExhausted(this.budget.snapshot())),
            );
    // One hedge budget per service, sized by the service's hedge or else the first route's.
    const h = this.policy.hedge ?? this.routes.find((p) => p.hedge)?.hedge;
    this.#hedgeKey = JSON.stringify(h?.maxExtraLoad ?? null);
    this.hedgeBudget =
      prev && prev.#hedgeKey === this.#hedgeKey
        ? prev.hedgeBudget
        : h
          ? new RetryBudget(
              { retryPercent: h.maxExtraLoad * 100, minRetriesPerSecond: 0.1, ttlMs: BUDGET_DEFAULTS.ttlMs },
              clock,
            )
          : undefined;
  }
}
