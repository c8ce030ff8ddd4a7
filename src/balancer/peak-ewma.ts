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
  #estimate: number;
  #updatedAt: number;
  #sampled = false;
  readonly #lambda: number;

  constructor(defaultRttMs: number, halfLifeMs: number, now: number) {
    this.#estimate = defaultRttMs;
    this.#updatedAt = now;
    this.#lambda = Math.LN2 / halfLifeMs;
  }

  /** True once a real round trip has been recorded (until then the estimate is the default). */
  get sampled(): boolean {
    return this.#sampled;
  }

  /** Records one round trip of `rttMs` that completed at `now`. */
  observe(rttMs: number, now: number): void {
    if (!(rttMs >= 0)) return; // NaN or negative: a broken clock reading, ignore it
    if (!this.#sampled || rttMs > this.#estimate) {
      this.#sampled = true;
      this.#estimate = rttMs;
    } else {
      const w = Math.exp(-Math.max(0, now - this.#updatedAt) * this.#lambda);
      this.#estimate = this.#estimate * w + rttMs * (1 - w);
    }
    // Completions may be reported out of order: time never goes backwards here.
    if (now > this.#updatedAt) this.#updatedAt = now;
  }

  /**
   * Records a lower bound of a round trip (an attempt cancelled or timed out after `rttMs`) or the
   * time of a failure (a fast 503 says nothing about how fast the endpoint's successes are): it
   * may raise the estimate, never lower it.
   */
  raise(rttMs: number, now: number): void {
    if (!(rttMs >= 0)) return;
    const current = this.estimate(now);
    if (!this.#sampled) {
      this.#sampled = true;
      this.#estimate = Math.max(rttMs, current);
      this.#updatedAt = Math.max(this.#updatedAt, now);
    } else if (rttMs > current) {
      this.#estimate = rttMs;
      this.#updatedAt = Math.max(this.#updatedAt, now);
    }
  }

  /** The current estimate in ms, decayed toward 0 over the time since the last sample. */
  estimate(now: number): number {
    const elapsed = now - this.#updatedAt;
    const value = elapsed > 0 ? this.#estimate * Math.exp(-elapsed * this.#lambda) : this.#estimate;
    return Math.max(value, MIN_ESTIMATE_MS);
  }

  cost(inflight: number, now: number): number {
    return this.estimate(now) * (inflight + 1);
  }
}

/** 1 ns: keeps `estimate × (inflight + 1)` from collapsing to 0 when exp() underflows. */
const MIN_ESTIMATE_MS = 1e-6;
