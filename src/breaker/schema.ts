import { z } from 'zod';
import { duration } from '../config/zod-helpers.ts';

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
  /** The rolling statistics window (opossum default 10s, in 10 buckets). */
  rollingCountTimeout: duration.optional(),
  /** Minimum requests in the window before the breaker may open (opossum default 0; meshwork 20). */
  volumeThreshold: z.number().int().min(0).optional(),
});

export type CircuitBreakerConfig = z.output<typeof circuitBreakerSchema>;
