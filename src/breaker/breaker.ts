import type CircuitBreaker from 'opossum';
import { loadOptional } from '../optional.ts';
import type { CircuitBreakerConfig } from './schema.ts';

/** The breaker's state, spelt one way everywhere (snapshot, channels, metrics, logs). */
export type CircuitState = 'closed' | 'open' | 'half_open';

export const BREAKER_DEFAULTS = {
  errorThresholdPercentage: 50,
  resetTimeoutMs: 30_000,
  rollingCountTimeoutMs: 10_000,
  rollingCountBuckets: 10,
  /** opossum's default is 0 (one failure can open it); a service breaker needs some volume. */
  volumeThreshold: 20,
} as const;

/** Settles one request's outcome for the breaker. */
export type Settle = (ok: boolean) => void;

/** A code-only fallback answer for a service whose breaker is open (createMesh `fallbacks`). */
export interface FallbackResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}
export type Fallback = (req: { service: string; method: string; path: string }) => FallbackResponse;

type Run = (settle: (v: unknown) => void, fail: (e: unknown) => void) => void;

/**
 * One opossum breaker for a service. `tryAcquire` returns a settle function when the request
 * may go (closed, or the single half-open probe), undefined when the breaker is open.
 */
export class ServiceBreaker {
  readonly #breaker: CircuitBreaker<[Run], unknown>;
  rejected = 0;

  constructor(cfg: CircuitBreakerConfig, onState?: (state: CircuitState) => void) {
    // opossum is an optional peer dependency, loaded for the first service with a breaker.
    const Breaker = loadOptional<typeof CircuitBreaker>(
      'opossum',
      'the circuit breaker (`trafficPolicy.circuitBreaker`)',
    );
    this.#breaker = new Breaker<[Run], unknown>(
      (run: Run) => new Promise((resolve, reject) => run(resolve, reject)),
      {
        timeout: false,
        errorThresholdPercentage: cfg.errorThresholdPercentage ?? BREAKER_DEFAULTS.errorThresholdPercentage,
        resetTimeout: cfg.resetTimeout ?? BREAKER_DEFAULTS.resetTimeoutMs,
        rollingCountTimeout: cfg.rollingCountTimeout ?? BREAKER_DEFAULTS.rollingCountTimeoutMs,
        rollingCountBuckets: BREAKER_DEFAULTS.rollingCountBuckets,
        volumeThreshold: cfg.volumeThreshold ?? BREAKER_DEFAULTS.volumeThreshold,
        enableSnapshots: false,
      },
    );
    if (onState) {
      this.#breaker.on('open', () => onState('open'));
      this.#breaker.on('halfOpen', () => onState('half_open'));
      this.#breaker.on('close', () => onState('closed'));
    }
  }

  /** Requests let through and not settled yet (the half-open probe among them). */
  pending = 0;

  tryAcquire(): Settle | undefined {
    let settle: Settle | undefined;
    const p = this.#breaker.fire((resolve, reject) => {
      this.pending++;
      settle = (ok) => {
        this.pending--;
        if (ok) resolve(undefined);
        else reject(new Error('upstream failure'));
      };
    });
    p.catch(() => {});
    if (!settle) this.rejected++;
    return settle;
  }

  get state(): CircuitState {
    return this.#breaker.halfOpen ? 'half_open' : this.#breaker.opened ? 'open' : 'closed';
  }

  stats(): { failures: number; successes: number; rejects: number } {
    const s = this.#breaker.stats;
    return { failures: s.failures, successes: s.successes, rejects: s.rejects };
  }

  shutdown(): void {
    this.#breaker.shutdown();
  }
}
