/** Envoy's defaults: base 25 ms, max 10 × base. */
export const BACKOFF_DEFAULTS = { baseMs: 25, maxMs: 250 } as const;

/**
 * Fully jittered exponential backoff: uniform in [0, min(max, base × 2^retry)).
 * `retry` is 0 for the first retry. `random` is injectable for tests.
 */
export function backoffMs(
  retry: number,
  baseMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(retry, 30));
  return Math.floor(random() * ceiling);
}

/**
 * Parses Retry-After (delta-seconds or an HTTP date) into ms from `nowEpochMs`. Undefined when
 * absent or unparseable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | undefined, nowEpochMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowEpochMs);
}
