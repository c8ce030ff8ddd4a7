import { z } from 'zod';
import { duration, durationAtLeast } from '../config/zod-helpers.ts';

/**
 * `trafficPolicy.circuitBreaker` (meshwork extension, on opossum): one breaker per service.
 * Off unless this object is present (and `enabled` is not false). Defaults are opossum's.
 */
export const circuitBreakerSchema = z.strictObject({
  enabled: z.boolean().optional(),
  /** Open when this % of requests in the window failed (opossum default 50). */
  errorThresholdPercentage: z.number().min(1).max(100).optional(),
  /** Time open before a half-open probe (opossum default 30s). */
  resetTimeout: duration.optional(),
  /**
   * The rolling statistics window (opossum default 10s, in 10 buckets rotated by a timer every
   * window/10): at least 1s, so the timer runs at most ten times a second (below 10 ms it would
   * run every millisecond; opossum replaces 0 with its 10s default).
   */
  rollingCountTimeout: durationAtLeast(
    1000,
    'its 10 buckets rotate on a timer every window/10; a shorter window spins, and 0 becomes 10s',
  ).optional(),
  /** Minimum requests in the window before the breaker may open (opossum default 0; meshwork 20). */
  volumeThreshold: z.number().int().min(0).optional(),
});

export type CircuitBreakerConfig = z.output<typeof circuitBreakerSchema>;
