import type { Clock } from '../clock.ts';

/** Linkerd / Finagle: at most 20% more requests, plus 10 retries per second, over 10 s. */
export const BUDGET_DEFAULTS = { retryPercent: 20, minRetriesPerSecond: 10, ttlMs: 10_000 } as const;

const BUCKETS = 10;

export interface BudgetOptions {
  retryPercent: number;
  minRetriesPerSecond: number;
  ttlMs: number;
}

export interface BudgetSnapshot {
  retryPercent: number;
  minRetriesPerSecond: number;
  ttlMs: number;
  /** Requests and retries counted in the current window. */
  requests: number;
  retries: number;
  /** True when the last withdrawal was refused and the window has not allowed one since. */
  exhausted: boolean;
  /** Retries refused by the budget since the mesh started. */
  exhaustedCount: number;
}

/**
 * A retry budget over a sliding window of 10 buckets: a retry is allowed while
 * retries < minRetriesPerSecond × ttl + retryPercent% × requests, both counted over the window.
 */
export class RetryBudget {
  readonly #opts: BudgetOptions;
  readonly #clock: Clock;
  readonly #bucketMs: number;
  readonly #requests = new Float64Array(BUCKETS);
  readonly #retries = new Float64Array(BUCKETS);
  #head = 0;
  #headStart: number;
  #exhausted = false;
  exhaustedCount = 0;

  /** Called when the budget goes from available to exhausted (once per episode). */
  readonly #onExhausted: (() => void) | undefined;

  constructor(opts: BudgetOptions, clock: Clock, onExhausted?: () => void) {
    this.#opts = opts;
    this.#onExhausted = onExhausted;
    this.#clock = clock;
    this.#bucketMs = opts.ttlMs / BUCKETS;
    this.#headStart = clock();
  }

  #advance(now: number): void {
    const steps = Math.floor((now - this.#headStart) / this.#bucketMs);
    if (steps <= 0) return;
    const n = Math.min(steps, BUCKETS);
    for (let i = 0; i < n; i++) {
      this.#head = (this.#head + 1) % BUCKETS;
      this.#requests[this.#head] = 0;
      this.#retries[this.#head] = 0;
    }
    this.#headStart += steps * this.#bucketMs;
  }

  #sum(a: Float64Array): number {
    let s = 0;
    for (let i = 0; i < BUCKETS; i++) s += a[i] as number;
    return s;
  }

  /** Counts one original request; `now` saves a clock read when the caller has one at hand. */
  deposit(now: number = this.#clock()): void {
    this.#advance(now);
    this.#requests[this.#head] = (this.#requests[this.#head] ?? 0) + 1;
  }

  /** Takes one retry from the budget; false (and counted) when it is exhausted. */
  tryWithdraw(): boolean {
    this.#advance(this.#clock());
    const allowed =
      (this.#opts.minRetriesPerSecond * this.#opts.ttlMs) / 1000 +
      (this.#opts.retryPercent / 100) * this.#sum(this.#requests);
    if (this.#sum(this.#retries) + 1 > allowed) {
      if (!this.#exhausted) this.#onExhausted?.();
      this.#exhausted = true;
      this.exhaustedCount++;
      return false;
    }
    this.#exhausted = false;
    this.#retries[this.#head] = (this.#retries[this.#head] ?? 0) + 1;
    return true;
  }

  snapshot(): BudgetSnapshot {
    this.#advance(this.#clock());
    return {
      retryPercent: this.#opts.retryPercent,
      minRetriesPerSecond: this.#opts.minRetriesPerSecond,
      ttlMs: this.#opts.ttlMs,
      requests: this.#sum(this.#requests),
      retries: this.#sum(this.#retries),
      exhausted: this.#exhausted,
      exhaustedCount: this.exhaustedCount,
    };
  }
}
