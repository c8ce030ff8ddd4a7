import type { DispatchController, DispatchHandler, ResponseHeaders, UpgradeSocket } from '../pipeline.ts';

/** What a finished handler forwards to: nothing (also the retry run's, src/retry/retry-layer.ts). */
export const FINISHED: DispatchHandler = Object.freeze({});

/**
 * A handler that forwards every callback to the handler it wraps (as undici's DecoratorHandler
 * does). Layers extend it and override only the callbacks they care about, calling super.
 *
 * Once the response has ended, failed or upgraded (undici sends nothing after that), it lets go
 * of the handler it wraps: the transport may keep a finished handler referenced for a while
 * (until its connection's next request), and it must not keep the whole request with it, or
 * every request's objects outlive the young generation and cost a major GC.
 */
export class ForwardingHandler implements DispatchHandler {
  #handler: DispatchHandler;

  constructor(handler: DispatchHandler) {
    this.#handler = handler;
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    socket: UpgradeSocket,
  ): void {
    const h = this.#handler;
    this.#handler = FINISHED;
    h.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): void {
    this.#handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: DispatchController, trailers: ResponseHeaders): void {
    const h = this.#handler;
    this.#handler = FINISHED;
    h.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: DispatchController, err: Error): void {
    const h = this.#handler;
    this.#handler = FINISHED;
    h.onResponseError?.(controller, err);
  }
}
