/**
 * THE outcome model: what one attempt (below the balancer) or one request (above it) came to.
 * Every layer that judges an outcome (load, outlier, breaker, retry, telemetry) reads it from
 * here, so they can never disagree about what a failure is. Models: linkerd2-proxy's
 * `Classify`, cockatiel's `handleWhen`, tower's `TrackCompletion`.
 *
 *   classify(err) → cancelled | timeout | connect | reset | refused-stream | other
 *   OutcomeHandler → onHeaders(status) once, onDone(outcome) once, whatever undici calls
 */
import { ErrorCodes, isMeshworkError } from './errors.ts';
import { ForwardingHandler } from './http/forwarding-handler.ts';
import type { DispatchController, ResponseHeaders, UpgradeSocket } from './pipeline.ts';

/**
 * How an attempt failed.
 * - `cancelled`: ended on purpose, by the caller or the mesh (a losing hedge, a retried answer);
 *   says nothing about the endpoint.
 * - `timeout`: meshwork's own timeout fired (per-try, request or inherited deadline).
 * - `connect`: no connection was made (refused, unreachable, connect timeout): provably not sent.
 * - `reset`: the connection broke after it was made, or the upstream spoke invalid HTTP
 *   (Envoy counts a protocol error as a reset).
 * - `refused-stream`: an HTTP/2 REFUSED_STREAM: provably not processed.
 * - `other`: anything else (a local error of the mesh, an unknown error).
 */
export type ErrorKind = 'cancelled' | 'timeout' | 'connect' | 'reset' | 'refused-stream' | 'other';

/** The reason the retry layer aborts its own throw-away attempts with; recognised by identity. */
export const DISCARDED: Error = Object.freeze(
  Object.assign(new Error('attempt discarded by the retry layer'), { name: 'Discarded' }),
);

const CONNECT_CODES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
const RESET_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'ECONNABORTED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  // The upstream sent a body of another length than it announced (truncated or overlong).
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

function codeOf(err: unknown): string | undefined {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let i = 0; i < 3 && e; i++) {
    if (typeof e.code === 'string') return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

/** Maps any error an attempt or a request can end with to its kind. */
export function classify(err: unknown): ErrorKind {
  if (err === DISCARDED) return 'cancelled';
  if (isMeshworkError(err)) {
    if (err.code === ErrorCodes.TIMEOUT) return 'timeout';
    if (err.code === ErrorCodes.ABORTED) return 'cancelled';
    // A codeless error wrapped to give the caller one error shape: judged as that error.
    if (err.code === ErrorCodes.REQUEST_FAILED) return classify(err.cause);
    return 'other';
  }
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'AbortError') return 'cancelled';
  // undici's parser errors carry no code in every version: known by name.
  if (name === 'HTTPParserError') return 'reset';
  const code = codeOf(err);
  if (code === undefined) return 'other';
  if (code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') return 'cancelled';
  if (CONNECT_CODES.has(code)) return 'connect';
  if (RESET_CODES.has(code)) return 'reset';
  // llhttp's parser errors (HPE_INVALID_CONSTANT, HPE_INVALID_HEADER_TOKEN, ...): invalid HTTP.
  if (code.startsWith('HPE_')) return 'reset';
  if (code === 'ERR_HTTP2_STREAM_ERROR' && /REFUSED_STREAM/.test(String((err as Error).message)))
    return 'refused-stream';
  return 'other';
}

/**
 * True only when the request provably never reached the upstream application: the connection
 * was never established, or the HTTP/2 stream was refused. Safe to retry even for POST/PATCH.
 */
export function provablyNotSent(kind: ErrorKind): boolean {
  return kind === 'connect' || kind === 'refused-stream';
}

/** What one attempt or request came to. */
export interface Outcome {
  /** The response status; 0 when no response headers arrived. */
  readonly status: number;
  /** How it failed; undefined when the response ended (or upgraded) cleanly. */
  readonly error: ErrorKind | undefined;
  /** The error itself, when there is one. */
  readonly cause: Error | undefined;
}

/** Clean outcomes, one per status, shared: the common path allocates nothing. */
const CLEAN: Outcome[] = [];
function cleanOutcome(status: number): Outcome {
  let o = CLEAN[status];
  if (o === undefined) {
    o = Object.freeze({ status, error: undefined, cause: undefined });
    if (status >= 0 && status < 1000) CLEAN[status] = o;
  }
  return o;
}

/**
 * True when the outcome counts against the endpoint or service: a 5xx answer, or an error that
 * was not a cancellation. A body that broke after a 2xx counts (the caller got no whole answer).
 */
export function isFailure(o: Outcome): boolean {
  return o.status >= 500 || (o.error !== undefined && o.error !== 'cancelled');
}

/**
 * The one forwarding handler base for layers that judge outcomes. `onHeaders(status)` fires once
 * when response headers arrive (or an upgrade), `onDone(outcome)` fires once when the response
 * ended, failed or upgraded; both fire before the callback is forwarded. Subclasses override only
 * the hooks.
 */
export abstract class OutcomeHandler extends ForwardingHandler {
  #status = 0;
  #done = false;

  /** The status seen so far (0 before headers). */
  protected get status(): number {
    return this.#status;
  }

  /** True once `onDone` has fired. */
  protected get done(): boolean {
    return this.#done;
  }

  protected onHeaders(_status: number): void {}

  protected abstract onDone(outcome: Outcome): void;

  #end(outcome: Outcome): void {
    if (this.#done) return;
    this.#done = true;
    this.onDone(outcome);
  }

  override onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    socket: UpgradeSocket,
  ): void {
    if (this.#status === 0 && !this.#done) {
      this.#status = statusCode;
      this.onHeaders(statusCode);
    }
    this.#end(cleanOutcome(statusCode));
    super.onRequestUpgrade(controller, statusCode, headers, socket);
  }

  override onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): void {
    if (this.#status === 0 && !this.#done) {
      this.#status = statusCode;
      this.onHeaders(statusCode);
    }
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  override onResponseEnd(controller: DispatchController, trailers: ResponseHeaders): void {
    this.#end(cleanOutcome(this.#status));
    super.onResponseEnd(controller, trailers);
  }

  override onResponseError(controller: DispatchController, err: Error): void {
    if (!this.#done) this.#end({ status: this.#status, error: classify(err), cause: err });
    super.onResponseError(controller, err);
  }
}
