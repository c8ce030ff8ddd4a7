import { z } from 'zod';
import { parseHostPort } from './address.ts';
import { parseDuration } from './duration.ts';

/** A duration: "250ms", "2s", "1m", "1m30s" or a number of milliseconds. Parsed to milliseconds. */
export const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: 'is not a duration (use "250ms", "2s", "1m", "1m30s" or a number of milliseconds)',
      input: value,
    });
    return z.NEVER;
  }
  return ms;
});

/** A "host:port" string, validated. */
export const hostPort = z.string().refine((v) => parseHostPort(v) !== undefined, {
  message: 'is not a valid "host:port" address (IPv6 as "[::1]:8080", port 1-65535)',
});

/** Istio's `percentage: { value }` (0-100, fractions allowed). */
export const percentage = z.strictObject({ value: z.number().min(0).max(100) });

export const labels = z.record(z.string(), z.string());
