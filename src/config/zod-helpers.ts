import { z } from 'zod';
import { parseHostPort } from './address.ts';
import { readDuration } from './duration.ts';
import { nullProtoRecord } from './reserved.ts';

/**
 * The longest duration meshwork accepts: Node.js timers wait at most 2^31-1 ms (about 24.8
 * days), and a longer delay is not honoured (Node fires it after 1 ms instead).
 */
export const MAX_DURATION_MS = 2_147_483_647;

function durationSchema(minMs: number, floorReason: string) {
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    const ms = readDuration(value);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'is not a duration (use "250ms", "2s", "1m", "1m30s" or a number of milliseconds)',
        input: value,
      });
      return z.NEVER;
    }
    if (!(ms <= MAX_DURATION_MS)) {
      ctx.addIssue({
        code: 'custom',
        message: `is longer than the maximum duration, ${MAX_DURATION_MS} ms (about 24.8 days, the longest a Node.js timer can wait)`,
        input: value,
      });
      return z.NEVER;
    }
    if (ms < minMs) {
      ctx.addIssue({
        code: 'custom',
        message: `must be at least ${minMs} ms (${floorReason})`,
        input: value,
      });
      return z.NEVER;
    }
    return ms;
  });
}

/**
 * A duration: "250ms", "2s", "1m", "1m30s" or a number of milliseconds, parsed to milliseconds;
 * 0 to MAX_DURATION_MS.
 */
export const duration = durationSchema(0, '');

/**
 * A duration with a floor, for fields where a smaller value fails every request or makes the
 * mesh spin; `reason` says why in the error (e.g. "0 would fail every request").
 */
export function durationAtLeast(minMs: number, reason: string) {
  return durationSchema(minMs, reason);
}

/**
 * Floor of the durations that pace periodic work (health probes, DNS re-resolution, file
 * polling, Consul re-reads): at most ten rounds a second per service or endpoint.
 */
export const PERIOD_FLOOR_MS = 100;

/** A duration that paces periodic work: PERIOD_FLOOR_MS or more. */
export function period(what: string) {
  return durationAtLeast(PERIOD_FLOOR_MS, `${what} at most ten times a second; 0 would loop`);
}

/** A "host:port" string, validated. */
export const hostPort = z.string().refine((v) => parseHostPort(v) !== undefined, {
  message: 'is not a valid "host:port" address (IPv6 as "[::1]:8080", port 1-65535)',
});

/** Istio's `percentage: { value }` (0-100, fractions allowed). */
export const percentage = z.strictObject({ value: z.number().min(0).max(100) });

/**
 * A map keyed by user-given names (services, labels, headers): parsed into an object without a
 * prototype, so a name such as `constructor` or `toString` is an ordinary key and a lookup of a
 * missing name never finds an Object.prototype member. (`__proto__` keys are refused before.)
 */
export function userRecord<K extends z.ZodType<string, string>, V extends z.ZodType>(key: K, value: V) {
  return z
    .record(key, value)
    .transform((rec) => nullProtoRecord(Object.entries(rec) as [z.output<K>, z.output<V>][]));
}

export const labels = userRecord(z.string(), z.string());
