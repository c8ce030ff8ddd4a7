/**
 * `sidecarResponses: true`: failures the mesh itself makes are answered as an Istio sidecar
 * (Envoy) answers them, with an HTTP response instead of a thrown error: a route timeout is a
 * 504, an overflow or no healthy endpoint a 503... Envoy's response flags are the model: the
 * flag is in the `x-meshwork-response-flags` header (and the error code in `x-meshwork-error`),
 * the body is Envoy's text. Failures that are the caller's own (an aborted request, an invalid
 * URL or path, an unknown service, a closed mesh) are still thrown: a sidecar has no answer for
 * them either. This is the outermost layer: every other layer has seen the failure as a failure.
 */
import { STATUS_CODES } from 'node:http';
import { ErrorCodes, isMeshworkError } from '../errors.ts';
import { classify } from '../outcome.ts';
import type { DispatchController, Layer, ResponseHeaders } from '../pipeline.ts';
import { ForwardingHandler } from './forwarding-handler.ts';
import { toRawHeaders } from './synthetic.ts';

export interface SidecarAnswer {
  readonly status: number;
  /** Envoy's response flag: UT, UO, UH, UF, UC, ... */
  readonly flag: string;
  /** Envoy's body text for it. */
  readonly body: string;
}

/** What a sidecar answers instead of `err`, or undefined when the error stays an error. */
export function sidecarAnswer(err: unknown): SidecarAnswer | undefined {
  if (isMeshworkError(err)) {
    switch (err.code) {
      case ErrorCodes.TIMEOUT:
        return { status: 504, flag: 'UT', body: 'upstream request timeout' };
      case ErrorCodes.OVERFLOW:
      case ErrorCodes.CIRCUIT_OPEN:
        return {
          status: 503,
          flag: 'UO',
          body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow',
        };
      case ErrorCodes.NO_ENDPOINTS:
        return { status: 503, flag: 'UH', body: 'no healthy upstream' };
      case ErrorCodes.TLS_IDENTITY:
        return {
          status: 503,
          flag: 'UF',
          body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: TLS error',
        };
      default:
        return undefined;
    }
  }
  switch (classify(err)) {
    case 'connect':
      return {
        status: 503,
        flag: 'UF',
        body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
      };
    case 'reset':
      return {
        status: 503,
        flag: 'UC',
        body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
      };
    case 'refused-stream':
      return {
        status: 503,
        flag: 'UR',
        body: 'upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset',
      };
    default:
      return undefined;
  }
}

/** The caller's controller, with the raw headers of an answer made here (undici's fetch reads them). */
class AnswerController implements DispatchController {
  readonly #inner: DispatchController;
  raw: Buffer[] | undefined;

  constructor(inner: DispatchController) {
    this.#inner = inner;
  }
  get rawHeaders(): DispatchController['rawHeaders'] {
    return this.raw ?? this.#inner.rawHeaders;
  }
  get rawTrailers(): DispatchController['rawTrailers'] {
    return this.#inner.rawTrailers;
  }
  get aborted(): boolean {
    return this.#inner.aborted;
  }
  get paused(): boolean {
    return this.#inner.paused;
  }
  get reason(): Error | null {
    return this.#inner.reason;
  }
  abort(reason: Error): void {
    this.#inner.abort(reason);
  }
  pause(): void {
    this.#inner.pause();
  }
  resume(): void {
    this.#inner.resume();
  }
}

class SidecarHandler extends ForwardingHandler {
  #controller: AnswerController | undefined;
  #started = false;

  override onRequestStart(controller: DispatchController, context: unknown): void {
    this.#controller = new AnswerController(controller);
    super.onRequestStart(this.#controller, context);
  }

  override onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): void {
    this.#started = true;
    super.onResponseStart(this.#controller ?? controller, statusCode, headers, statusMessage);
  }

  override onResponseData(controller: DispatchController, chunk: Buffer): void {
    super.onResponseData(this.#controller ?? controller, chunk);
  }

  override onResponseEnd(controller: DispatchController, trailers: ResponseHeaders): void {
    super.onResponseEnd(this.#controller ?? controller, trailers);
  }

  override onResponseError(controller: DispatchController, err: Error): void {
    const c = this.#controller ?? new AnswerController(controller);
    const answer = this.#started || c.aborted ? undefined : sidecarAnswer(err);
    if (answer === undefined) {
      super.onResponseError(c, err);
      return;
    }
    const body = Buffer.from(answer.body);
    const headers: Record<string, string> = {
      'content-type': 'text/plain',
      'content-length': String(body.length),
      'x-meshwork-response-flags': answer.flag,
      'x-meshwork-error': isMeshworkError(err)
        ? err.code
        : String((err as { code?: unknown }).code ?? err.name),
    };
    c.raw = toRawHeaders(headers);
    this.#started = true;
    super.onResponseStart(c, answer.status, headers, STATUS_CODES[answer.status] ?? '');
    super.onResponseData(c, body);
    super.onResponseEnd(c, {});
  }
}

export function sidecarLayer(): Layer {
  return (next) => (req, handler) => {
    next(req, new SidecarHandler(handler));
  };
}
