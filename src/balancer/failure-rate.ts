import {
  allocateCell,
  FAILURE_LAMBDA,
  FAILURE_RATE,
  FAILURE_UPDATED_AT,
  type LoadCell,
  tables,
} from './load-table.ts';

/**
 * The share of an endpoint's recent attempts that failed, for failure-aware balancing: a 5xx
 * answer or an error that was not a cancellation counts as a failure (the outcome model's
 * `isFailure`). An exponentially weighted moving average over attempts, each weighing at least
 * 1/16 (so a run of failures shows within a few attempts, as Finagle's failure accrual does over
 * its window of requests), and decaying toward 0 over time with the peak-EWMA's half-life, so an
 * endpoint that failed and then got no traffic is probed again.
 *
 * `penalty` turns it into a cost multiplier: (1 / (1 − p))². 1 / (1 − p) is the expected number of
 * attempts per success when each attempt fails with probability p (a failed attempt's work is
 * wasted and done again elsewhere); it is squared because a fast failure frees its slot at once,
 * and with 1 / (1 − p) alone that throughput advantage cancels the penalty out: a replica failing
 * 30% of attempts fast would still get its full fifth of the traffic (checked in the balancer's
 * simulation test). gRPC's weighted round robin (A58) penalises errors in the same spirit
 * (`error_utilization_penalty`), and Linkerd's balancer is failure-aware.
 */
export class FailureRate {
  /** The state lives in a row of the load table (load-table.ts): rate, update time, λ. */
  /** Its row (held so that the row stays its own while it lives). */
  readonly cell: LoadCell;
  readonly #o: number;
  readonly #c: number;

  constructor(halfLifeMs: number, now: number, cell: LoadCell = allocateCell()) {
    this.cell = cell;
    this.#o = cell.o;
    this.#c = cell.c;
    tables.hot[this.#o + FAILURE_RATE] = 0;
    tables.cold[this.#c + FAILURE_UPDATED_AT] = now;
    tables.cold[this.#c + FAILURE_LAMBDA] = Math.LN2 / halfLifeMs;
  }

  /** Records one attempt's outcome that completed at `now`. */
  observe(failed: boolean, now: number): void {
    const o = this.#o;
    const c = this.#c;
    const rate = tables.hot[o + FAILURE_RATE] as number;
    const updatedAt = tables.cold[c + FAILURE_UPDATED_AT] as number;
    if (now > updatedAt) tables.cold[c + FAILURE_UPDATED_AT] = now;
    // The common case, nothing ever failed: nothing to average (no exp()).
    if (!failed && rate === 0) return;
    const elapsed = Math.max(0, now - updatedAt);
    const w = Math.max(MIN_WEIGHT, 1 - Math.exp(-elapsed * (tables.cold[c + FAILURE_LAMBDA] as number)));
    tables.hot[o + FAILURE_RATE] = rate + ((failed ? 1 : 0) - rate) * w;
  }

  /** The failure share now, decayed toward 0 over the time since the last attempt. */
  rate(now: number): number {
    return failureRate(this.#o, this.#c, now);
  }

  /** Cost multiplier: (1 / (1 − p))², p capped at 0.99 (so at most 10,000×). */
  penalty(now: number): number {
    return failurePenalty(this.#o, this.#c, now);
  }
}

/** `FailureRate.rate` of the row at `o` in `table` and `c` in `cold`. */
export function failureRate(o: number, c: number, now: number): number {
  const r = tables.hot[o + FAILURE_RATE] as number;
  if (r === 0) return 0;
  const elapsed = now - (tables.cold[c + FAILURE_UPDATED_AT] as number);
  return elapsed > 0 ? r * Math.exp(-elapsed * (tables.cold[c + FAILURE_LAMBDA] as number)) : r;
}

/** `FailureRate.penalty` of the row at `o` / `c` (balancers read rows directly). */
export function failurePenalty(o: number, c: number, now: number): number {
  if (tables.hot[o + FAILURE_RATE] === 0) return 1;
  const inv = 1 / (1 - Math.min(failureRate(o, c, now), MAX_RATE));
  return inv * inv;
}

/** Each attempt weighs at least this much in the average (a window of about 16 attempts). */
const MIN_WEIGHT = 1 / 16;
const MAX_RATE = 0.99;
