import type { ErrorKind } from '../outcome.ts';

/**
 * Istio/Envoy `retryOn`: which outcomes of an attempt are worth another attempt.
 * Parsed once at config time into flags and a status-code set.
 */

export const RETRY_ON_TOKENS = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'refused-stream',
  'retriable-4xx',
  'retriable-status-codes',
  'unavailable',
  'cancelled',
  'deadline-exceeded',
  'resource-exhausted',
] as const;

export type RetryOnToken = (typeof RETRY_ON_TOKENS)[number];

export interface RetryOn {
  readonly tokens: ReadonlySet<RetryOnToken>;
  /** Plain status codes (and 503 for a bare `retriable-status-codes`). */
  readonly codes: ReadonlySet<number>;
}

/** Istio's default: `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` (503). */
export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

const GRPC = {
  cancelled: '1',
  'deadline-exceeded': '4',
  'resource-exhausted': '8',
  unavailable: '14',
} as const;

/** Parses a comma string or a list. Returns an error message naming the bad token instead of throwing. */
export function parseRetryOn(input: string | readonly (string | number)[]): RetryOn | string {
  const parts = typeof input === 'string' ? input.split(',') : input.map(String);
  const tokens = new Set<RetryOnToken>();
  const codes = new Set<number>();
  for (const raw of parts) {
    const t = raw.trim();
    if (t === '') continue;
    if (/^\d{3}$/.test(t)) {
      const code = Number(t);
      if (code < 100 || code > 599) return `"${t}" is not an HTTP status code (100-599)`;
      codes.add(code);
      tokens.add('retriable-status-codes');
      continue;
    }
    if (!(RETRY_ON_TOKENS as readonly string[]).includes(t))
      return `"${t}" is not a retryOn token (use ${RETRY_ON_TOKENS.join(', ')} or a status code)`;
    tokens.add(t as RetryOnToken);
  }
  if (tokens.size === 0) return 'is empty (give at least one retryOn token)';
  if (tokens.has('retriable-status-codes') && codes.size === 0) codes.add(503);
  return { tokens, codes };
}

/** True when a response with this status (and gRPC status header) should be retried. */
export function retriesStatus(on: RetryOn, status: number, grpcStatus: string | undefined): boolean {
  const t = on.tokens;
  if (status >= 500 && t.has('5xx')) return true;
  if ((status === 502 || status === 503 || status === 504) && t.has('gateway-error')) return true;
  if (status === 409 && t.has('retriable-4xx')) return true;
  if (t.has('retriable-status-codes') && on.codes.has(status)) return true;
  if (grpcStatus !== undefined) {
    for (const name of ['cancelled', 'deadline-exceeded', 'resource-exhausted', 'unavailable'] as const)
      if (t.has(name) && grpcStatus === GRPC[name]) return true;
  }
  return false;
}

/** True when an attempt that failed this way should be retried (Envoy's meanings). */
export function retriesFailure(on: RetryOn, kind: ErrorKind): boolean {
  const t = on.tokens;
  switch (kind) {
    case 'connect':
      return t.has('connect-failure') || t.has('5xx') || t.has('gateway-error');
    case 'refused-stream':
      return t.has('refused-stream') || t.has('5xx');
    case 'reset':
      return t.has('reset') || t.has('5xx');
    case 'timeout':
      // Envoy: a per-try timeout is retried under 5xx, gateway-error and reset.
      return t.has('5xx') || t.has('gateway-error') || t.has('reset');
    default:
      return false;
  }
}
