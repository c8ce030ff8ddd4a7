import { z } from 'zod';
import { duration, durationAtLeast } from '../config/zod-helpers.ts';
import { parseRetryOn, type RetryOn } from './retry-on.ts';

/** `retryOn`: a comma string or a list of tokens and status codes, parsed at config time. */
export const retryOnSchema = z
  .union([z.string(), z.array(z.union([z.string(), z.number().int()]))])
  .transform((value, ctx): RetryOn => {
    const parsed = parseRetryOn(value);
    if (typeof parsed === 'string') {
      ctx.addIssue({ code: 'custom', message: parsed, input: value });
      return z.NEVER;
    }
    return parsed;
  });

/** `retries.hedge` (meshwork extension, Finagle backup requests). */
export const hedgeSchema = z.strictObject({
  /** Send a backup request when no answer came within this time. */
  delay: duration,
  /** Backup requests allowed, as a fraction of requests (0.05 = 5% extra load). Default 0.05. */
  maxExtraLoad: z.number().gt(0).max(1).optional(),
});

/** `retries` (Istio HTTPRetry), at the service level and on each route (the route's wins). */
export const retriesSchema = z.strictObject({
  /**
   * Number of retries (not counting the first attempt), as in Istio. 0 disables retries. No cap
   * but Istio's int32 range: the retry budget and `maxRetries` bound the extra load.
   */
  attempts: z.number().int().min(0).max(2_147_483_647).optional(),
  perTryTimeout: duration.optional(),
  retryOn: retryOnSchema.optional(),
  /** Retry POST/PATCH on any retryOn condition (default false). */
  retryNonIdempotent: z.boolean().optional(),
  /** Base of the jittered exponential backoff between retries (Istio's `backoff`; default 25 ms, max 10 × base, as Envoy). */
  backoff: durationAtLeast(1, 'Envoy requires a base interval above 0').optional(),
  /**
   * true (default): a retry avoids the endpoints this request already tried (Envoy's
   * previous_hosts predicate, which Istio sets by default); false: any endpoint may be picked.
   */
  retryIgnorePreviousHosts: z.boolean().optional(),
  /** Upper bound on an honoured Retry-After (default 2s); a longer one ends retrying. */
  retryAfterMax: duration.optional(),
  hedge: hedgeSchema.optional(),
  /**
   * Istio: whether retries may go to other localities. Accepted for compatibility; meshwork's
   * retries may always use any endpoint of the pick group (locality preference still applies).
   */
  retryRemoteLocalities: z.boolean().optional(),
});

/** `retryBudget` (Linkerd's retry budget), per service. */
export const retryBudgetSchema = z.strictObject({
  enabled: z.boolean().optional(),
  retryPercent: z.number().min(0).max(1000).optional(),
  minRetriesPerSecond: z.number().min(0).optional(),
  ttl: durationAtLeast(1, 'the window over which retries are counted; 0 breaks the budget').optional(),
});

export type RetriesConfig = z.output<typeof retriesSchema>;
export type RetryBudgetConfig = z.output<typeof retryBudgetSchema>;
