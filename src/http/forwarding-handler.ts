import type { DispatchController, DispatchHandler } from '../pipeline.ts';

/**
 * A handler that forwards every callback to the handler it wraps (as undici's DecoratorHandler
 * does). Layers extend it and override only the callbacks they care about, calling super.
 */
export class ForwardingHandler implements DispatchHandler {
  protected readonly handler: DispatchHandler;

  constructor(handler: DispatchHandler) {
    this.handler = handler;
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.handler.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(controller: DispatchController, statusCode: number, headers: any, socket: any): void {
    this.handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: any,
    statusMessage?: string,
  ): void {
    this.handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    this.handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: DispatchController, trailers: any): void {
    this.handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: DispatchController, err: Error): void {
    this.handler.onResponseError?.(controller, err);
  }
}
