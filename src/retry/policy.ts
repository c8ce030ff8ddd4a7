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
  readonly hedge: { readonly delayMs: number; readonly maxExtraLoad: number } | undefined;
}

export interface RetryServiceConfig {
  retries?: RetriesConfig | undefined;
  timeout?: number | undefined;
  retryBudget?: RetryBudgetConfig | undefined;
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
    backoffBaseMs: r?.backoff?.baseInterval ?? BACKOFF_DEFAULTS.baseMs,
    backoffMaxMs:
      r?.backoff?.maxInterval ?? (r?.backoff ? r.backoff.baseInterval * 10 : BACKOFF_DEFAULTS.maxMs),
    hedge: r?.hedge
      ? { delayMs: r.hedge.delay, maxExtraLoad: r.hedge.maxExtraLoad ?? RETRY_DEFAULTS.hedgeMaxExtraLoad }
      : undefined,
  };
}

/** Per-service retry state, built once at createMesh. */
export class ServiceRetry {
  readonly policy: RetryPolicy;
  /** Undefined when `retryBudget.enabled: false`. */
  readonly budget: RetryBudget | undefined;
  /** Limits backup requests to maxExtraLoad of requests (no per-second allowance beyond 1/s). */
  readonly hedgeBudget: RetryBudget | undefined;

  /** The retry policy of each `http` route, by route index (a route's retries/timeout win over the service's). */
  readonly routes: readonly RetryPolicy[];

  /** Requests in the retry layer now (started and not finished), for the snapshot's checks. */
  active = 0;

  constructor(
    cfg: RetryServiceConfig & {
      http?: readonly { retries?: RetriesConfig | undefined; timeout?: number | undefined }[] | undefined;
    },
    clock: Clock,
    onExhausted?: (snapshot: BudgetSnapshot) => void,
  ) {
    this.policy = compileRetryPolicy(cfg);
    this.routes = (cfg.http ?? []).map((r) =>
      compileRetryPolicy({ retries: r.retries ?? cfg.retries, timeout: r.timeout ?? cfg.timeout }),
    );
    const b = cfg.retryBudget;
    this.budget =
      b?.enabled === false
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
    this.hedgeBudget = h
      ? new RetryBudget(
          { retryPercent: h.maxExtraLoad * 100, minRetriesPerSecond: 0.1, ttlMs: BUDGET_DEFAULTS.ttlMs },
          clock,
        )
      : undefined;
  }
}
