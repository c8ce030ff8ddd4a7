import { z } from 'zod';
import { duration, durationAtLeast } from '../config/zod-helpers.ts';

/**
 * `trafficPolicy.outlierDetection` (Istio), plus gRPC A50's success-rate and failure-percentage
 * ejection under Envoy's field names. Defaults in src/balancer/outlier.ts.
 */
export const outlierDetectionSchema = z.strictObject({
  /** Set false to turn outlier detection off (it is on by default, see docs/resilience.md). */
  enabled: z.boolean().optional(),
  consecutive5xxErrors: z.number().int().min(0).optional(),
  consecutiveGatewayErrors: z.number().int().min(0).optional(),
  /** Setting it splits local-origin failures (refused, reset, timeout) from 5xx counting. */
  consecutiveLocalOriginFailures: z.number().int().min(0).optional(),
  interval: durationAtLeast(
    1,
    'ejection analysis runs once per interval; Envoy requires more than 0',
  ).optional(),
  baseEjectionTime: duration.optional(),
  maxEjectionTime: duration.optional(),
  maxEjectionPercent: z.number().min(0).max(100).optional(),
  /**
   * Only these response statuses count as failures (Istio's outlierDetectionHttpErrorCodes,
   * Envoy's error matcher), instead of every 5xx.
   */
  outlierDetectionHttpErrorCodes: z.array(z.number().int().min(100).max(599)).min(1).optional(),
  minHealthPercent: z.number().min(0).max(100).optional(),
  /** A50 success-rate ejection. */
  successRateMinimumHosts: z.number().int().min(1).optional(),
  successRateRequestVolume: z.number().int().min(1).optional(),
  /** In Envoy's units: 1900 means mean − 1.9 × stdev. */
  successRateStdevFactor: z.number().positive().optional(),
  enforcingSuccessRate: z.number().min(0).max(100).optional(),
  /** A50 failure-percentage ejection (enforcingFailurePercentage 0 = off, Envoy's default). */
  failurePercentageThreshold: z.number().min(0).max(100).optional(),
  failurePercentageMinimumHosts: z.number().int().min(1).optional(),
  failurePercentageRequestVolume: z.number().int().min(1).optional(),
  enforcingFailurePercentage: z.number().min(0).max(100).optional(),
});

export type OutlierDetectionConfig = z.output<typeof outlierDetectionSchema>;
