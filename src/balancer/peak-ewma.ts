/**
 * Peak-EWMA load estimate (as in tower's load/peak_ewma and Finagle's PeakEwma).
 * A sample slower than the estimate replaces it at once (the peak); faster samples pull it
 * down with an exponential decay whose half-life is `halfLifeMs`. Reading the cost also decays
 * the estimate toward 0 over idle time, so an endpoint that was slow long ago gets probed again.
 * cost = estimate × (inflight + 1).
 */
export class PeakEwma {
  #estimate: number;
  #updatedAt: number;
  readonly #lambda: number;

  constructor(defaultRttMs: number, halfLifeMs: number, now: number) {
    this.#estimate = defaultRttMs;
    this.#updatedAt = now;
    this.#lambda = Math.LN2 / halfLifeMs;
  }

  /** Records one round trip of `rttMs` that completed at `now`. */
  observe(rttMs: number, now: number): void {
    if (rttMs > this.#estimate) {
      this.#estimate = rttMs;
    } else {
      const w = Math.exp(-Math.max(0, now - this.#updatedAt) * this.#lambda);
      this.#estimate = this.#estimate * w + rttMs * (1 - w);
    }
    this.#updatedAt = now;
  }

  /** The current estimate in ms, decayed toward 0 over the time since the last sample. */
  estimate(now: number): number {
    const elapsed = now - this.#updatedAt;
    return elapsed > 0 ? this.#estimate * Math.exp(-elapsed * this.#lambda) : this.#estimate;
  }

  cost(inflight: number, now: number): number {
    return this.estimate(now) * (inflight + 1);
  }
}
