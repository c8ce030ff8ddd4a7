/**
 * One limit, compiled, and the in-process algorithm (the same as the Redis script's, in
 * src/ratelimit/lua.ts): every limit counts requests in its calendar window (UTC: the second,
 * minute, hour, day or month), and `1s` / `1m` limits also run GCRA (a token bucket of `burst`
 * tokens refilled evenly, `requests` per period), so a burst is allowed but never more than
 * `requests` in one window. Times are wall-clock milliseconds (windows are calendar-aligned).
 */
import type { Period } from './schema.ts';

export interface CompiledLimit {
  readonly per: Period;
  readonly requests: number;
  /** GCRA for 1s and 1m; calendar windows alone for the rest. */
  readonly gcra: boolean;
  readonly burst: number;
  /** GCRA emission interval: ms per token. */
  readonly interval: number;
  /** GCRA tolerance: burst × interval. */
  readonly tau: number;
  /** Period code shared with the Lua script: 0 1s, 1 1m, 2 1h, 3 1d, 4 month. */
  readonly code: number;
  /** Fixed window length in ms; 0 for the month. */
  readonly windowMs: number;
}

export const PERIOD_CODE: Readonly<Record<Period, number>> = { '1s': 0, '1m': 1, '1h': 2, '1d': 3, month: 4 };
const WINDOW_MS: Readonly<Record<Period, number>> = {
  '1s': 1_000,
  '1m': 60_000,
  '1h': 3_600_000,
  '1d': 86_400_000,
  month: 0,
};

export function compileLimit(
  l: { requests: number; per: Period; burst?: number | undefined },
  share = 1,
): CompiledLimit {
  // A share of a limit (limit / N replicas) is rounded down, never below 1.
  const requests = Math.max(1, Math.floor(l.requests / share));
  const gcra = l.per === '1s' || l.per === '1m';
  const burst = gcra
    ? Math.max(1, Math.min(requests, Math.floor((l.burst ?? l.requests) / share)))
    : requests;
  const windowMs = WINDOW_MS[l.per];
  const interval = gcra ? windowMs / requests : 0;
  return {
    per: l.per,
    requests,
    gcra,
    burst,
    interval,
    tau: burst * interval,
    code: PERIOD_CODE[l.per],
    windowMs,
  };
}

/** Start of the UTC calendar window holding `now` (ms). */
export function windowStart(l: CompiledLimit, now: number): number {
  if (l.windowMs > 0) return now - (now % l.windowMs);
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** End (exclusive) of the window starting at `start`. */
export function windowEnd(l: CompiledLimit, start: number): number {
  if (l.windowMs > 0) return start + l.windowMs;
  const d = new Date(start);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** The state of one limit for one key, in process. */
export interface LimitState {
  winStart: number;
  winEnd: number;
  count: number;
  /** GCRA theoretical arrival time (ms); 0 = a full bucket. */
  tat: number;
}

export function newLimitState(): LimitState {
  return { winStart: 0, winEnd: 0, count: 0, tat: 0 };
}

/**
 * Rolls the window forward when `now` has left it. Only forward: a wall clock stepped back
 * stays in the current window (a reset there would hand out the window's tokens twice).
 */
function roll(l: CompiledLimit, s: LimitState, now: number): void {
  if (now < s.winEnd) return;
  s.winStart = windowStart(l, now);
  s.winEnd = windowEnd(l, s.winStart);
  s.count = 0;
}

/** Tokens this limit would give now (window and bucket). */
export function available(l: CompiledLimit, s: LimitState, now: number): number {
  roll(l, s, now);
  let a = l.requests - s.count;
  if (l.gcra) {
    const tat = Math.max(s.tat, now);
    // 1e-9: a bucket refilled to exactly k tokens is not read as k - 1 by rounding.
    const g = Math.floor((now + l.tau - tat) / l.interval + 1e-9);
    if (g < a) a = g;
  }
  return Math.max(a, 0);
}

/** Takes `n` tokens (the caller checked they are available). */
export function consume(l: CompiledLimit, s: LimitState, n: number, now: number): void {
  s.count += n;
  if (l.gcra) s.tat = Math.max(s.tat, now) + n * l.interval;
}

/** Gives `n` unused tokens back (a refund when another policy refused the request). */
export function refund(l: CompiledLimit, s: LimitState, n: number, now: number): void {
  if (now >= s.winStart && now < s.winEnd) s.count = Math.max(0, s.count - n);
  if (l.gcra && s.tat > now) s.tat = Math.max(now, s.tat - n * l.interval);
}

/** Ms until `n` tokens are available (0 when they are); Infinity when `n` exceeds the limit. */
export function waitFor(l: CompiledLimit, s: LimitState, n: number, now: number): number {
  if (n > l.requests || (l.gcra && n > l.burst)) return Number.POSITIVE_INFINITY;
  roll(l, s, now);
  let wait = 0;
  if (l.requests - s.count < n) wait = s.winEnd - now;
  if (l.gcra) {
    const tat = Math.max(s.tat, now);
    const g = tat + n * l.interval - l.tau - now;
    if (g > wait) wait = g;
  }
  return wait;
}

/** Ms until this limit's window ends (for the `RateLimit` header's `t`). */
export function resetIn(l: CompiledLimit, s: LimitState, now: number): number {
  roll(l, s, now);
  return s.winEnd - now;
}

/** The window's length in seconds, for `RateLimit-Policy`'s `w` (a month: this month's length). */
export function windowSeconds(l: CompiledLimit, now: number): number {
  if (l.windowMs > 0) return l.windowMs / 1000;
  const start = windowStart(l, now);
  return (windowEnd(l, start) - start) / 1000;
}
