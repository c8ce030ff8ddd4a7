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
 * The three HTTP-date forms of RFC 9110 §5.6.7, and nothing else: `Date.parse` alone would read
 * `1.5` or `2` (with a stray character) as a date decades ago or ahead.
 */
const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE =
  /^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * Parses Retry-After (delta-seconds or an HTTP date) into ms from `nowEpochMs`. Undefined when
 * absent or not one of those forms (the header is then ignored); a date in the past is 0.
 */
export function parseRetryAfter(value: string | undefined, nowEpochMs: number): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  let at = Number.NaN;
  if (IMF_FIXDATE.test(v) || RFC850_DATE.test(v)) at = Date.parse(v);
  // asctime carries no zone; HTTP dates are always GMT.
  else if (ASCTIME_DATE.test(v)) at = Date.parse(`${v} GMT`);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowEpochMs);
}
