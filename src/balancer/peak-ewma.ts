import {
  allocateCell,
  EWMA_ESTIMATE,
  EWMA_LAMBDA,
  EWMA_UPDATED_AT,
  FLAGS,
  type LoadCell,
  SAMPLED,
  tables,
} from './load-table.ts';

/**
 * Peak-EWMA load estimate (after tower's load/peak_ewma and Finagle's PeakEwma).
 *
 * - A sample slower than the stored estimate replaces it at once (the peak).
 * - A faster sample is blended in with weight `1 - 2^(-Δ/halfLife)`, Δ being the time since the
 *   previous sample: the old estimate loses half its weight every `halfLifeMs` (10 s by default).
 * - Reading decays the estimate toward 0 over the time since the last sample, with the same
 *   half-life, so an endpoint that was slow long ago and got no traffic since is probed again
 *   (tower and Finagle do the same: their `load()` records a zero-length sample).
 *
 * Unlike tower, reading is pure: tower's `load()` writes the decayed value back and moves the
 * update time, so how much a later fast sample counts depends on how often the balancer happened
 * to read the endpoint. Here it depends only on time, so picks never change an endpoint's state.
 *
 * The default RTT is a prior for an endpoint nothing is known about yet: the first real sample
 * replaces it outright (faster or slower). Otherwise, with a 10 s half-life, endpoints that answer
 * in 1 ms would look like 30 ms ones for many seconds, and a replica 40 ms slower would look
 * barely worse than they do (meshwork's choice; tower blends the first sample like the others).
 *
 * cost = estimate × (inflight + 1). The estimate has a tiny floor so that the in-flight count
 * still matters after hours of idleness (Finagle adds a penalty for the same reason).
 */
export class PeakEwma {
  /** The state lives in a row of the load table (load-table.ts): estimate, update time, λ, sampled bit. */
  /** Its row (held so that the row stays its own while it lives). */
  readonly cell: LoadCell;
  readonly #o: number;

  constructor(defaultRttMs: number, halfLifeMs: number, now: number, cell: LoadCell = allocateCell()) {
    this.cell = cell;
    this.#o = cell.o;
    tables.hot[this.#o + EWMA_ESTIMATE] = defaultRttMs;
    tables.hot[this.#o + EWMA_UPDATED_AT] = now;
    tables.hot[this.#o + EWMA_LAMBDA] = Math.LN2 / halfLifeMs;
    tables.hot[this.#o + FLAGS] = (tables.hot[this.#o + FLAGS] as number) & ~SAMPLED;
  }

  /** True once a real round trip has been recorded (until then the estimate is the default). */
  get sampled(): boolean {
    return ((tables.hot[this.#o + FLAGS] as number) & SAMPLED) !== 0;
  }

  #markSampled(): void {
    tables.hot[this.#o + FLAGS] = (tables.hot[this.#o + FLAGS] as number) | SAMPLED;
  }

  /** Records one round trip of `rttMs` that completed at `now`. */
  observe(rttMs: number, now: number): void {
    if (!(rttMs >= 0)) return; // NaN or negative: a broken clock reading, ignore it
    const t = tables.hot;
    const o = this.#o;
    const estimate = t[o + EWMA_ESTIMATE] as number;
    const updatedAt = t[o + EWMA_UPDATED_AT] as number;
    if (!this.sampled || rttMs > estimate) {
      this.#markSampled();
      t[o + EWMA_ESTIMATE] = rttMs;
    } else {
      const w = Math.exp(-Math.max(0, now - updatedAt) * (t[o + EWMA_LAMBDA] as number));
      t[o + EWMA_ESTIMATE] = estimate * w + rttMs * (1 - w);
    }
    // Completions may be reported out of order: time never goes backwards here.
    if (now > updatedAt) t[o + EWMA_UPDATED_AT] = now;
  }

  /**
   * Records a lower bound of a round trip (an attempt cancelled or timed out after `rttMs`) or the
   * time of a failure (a fast 503 says nothing about how fast the endpoint's successes are): it
   * may raise the estimate, never lower it.
   */
  raise(rttMs: number, now: number): void {
    if (!(rttMs >= 0)) return;
    const t = tables.hot;
    const o = this.#o;
    const current = this.estimate(now);
    if (!this.sampled) {
      this.#markSampled();
      t[o + EWMA_ESTIMATE] = Math.max(rttMs, current);
      t[o + EWMA_UPDATED_AT] = Math.max(t[o + EWMA_UPDATED_AT] as number, now);
    } else if (rttMs > current) {
      t[o + EWMA_ESTIMATE] = rttMs;
      t[o + EWMA_UPDATED_AT] = Math.max(t[o + EWMA_UPDATED_AT] as number, now);
    }
  }

  /** The current estimate in ms, decayed toward 0 over the time since the last sample. */
  estimate(now: number): number {
    return ewmaEstimate(tables.hot, this.#o, now);
  }

  cost(inflight: number, now: number): number {
    return this.estimate(now) * (inflight + 1);
  }
}

/** The estimate held in row `o` of `t` at `now` (what `PeakEwma.estimate` returns; balancers read rows directly). */
export function ewmaEstimate(t: Float64Array, o: number, now: number): number {
  const estimate = t[o + EWMA_ESTIMATE] as number;
  const elapsed = now - (t[o + EWMA_UPDATED_AT] as number);
  const value = elapsed > 0 ? estimate * Math.exp(-elapsed * (t[o + EWMA_LAMBDA] as number)) : estimate;
  return Math.max(value, MIN_ESTIMATE_MS);
}

/** 1 ns: keeps `estimate × (inflight + 1)` from collapsing to 0 when exp() underflows. */
const MIN_ESTIMATE_MS = 1e-6;
