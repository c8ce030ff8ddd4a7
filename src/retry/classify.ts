import { ErrorCodes, isMeshworkError } from '../errors.ts';
import type { FailureKind } from './retry-on.ts';

const CONNECT_CODES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
const RESET_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ECONNABORTED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

function codeOf(err: unknown): string | undefined {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let i = 0; i < 3 && e; i++) {
    if (typeof e.code === 'string') return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

/** Maps an attempt's error to what retryOn talks about. */
export function classifyFailure(err: unknown): FailureKind {
  if (isMeshworkError(err, ErrorCodes.TIMEOUT)) return 'timeout';
  if (isMeshworkError(err)) return 'other';
  const code = codeOf(err);
  if (code === undefined) return 'other';
  if (CONNECT_CODES.has(code)) return 'connect-failure';
  if (RESET_CODES.has(code)) return 'reset';
  if (code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(String((err as Error).message)))
    return 'refused-stream';
  return 'other';
}

/**
 * True only when the request provably never reached the upstream application: the TCP
 * connection was refused or never established, or the HTTP/2 stream was refused. Such a
 * failure is safe to retry even for POST/PATCH.
 */
export function provablyNotSent(err: unknown): boolean {
  const kind = classifyFailure(err);
  return kind === 'connect-failure' || kind === 'refused-stream';
}
