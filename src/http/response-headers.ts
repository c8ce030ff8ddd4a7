import type { DispatchController, DispatchHandler } from '../pipeline.ts';
import { toRawHeaders } from './synthetic.ts';

/**
 * A view of a controller whose `rawHeaders` are the edited headers, since consumers that prefer
 * the raw header list (undici's fetch, v1 handler adapters) would otherwise read the originals.
 */
class EditedHeadersController implements DispatchController {
  readonly #inner: DispatchController;
  rawHeaders: Buffer[] | null = null;
  constructor(inner: DispatchController) {
    this.#inner = inner;
  }
  get paused(): boolean {
    return this.#inner.paused;
  }
  get aborted(): boolean {
    return this.#inner.aborted;
  }
  get reason(): Error | null {
    return this.#inner.reason;
  }
  get rawTrailers(): DispatchController['rawTrailers'] {
    return this.#inner.rawTrailers;
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

export type HeaderEdit = (headers: Record<string, string | string[]>) => void;

/** Wraps a handler so `edit` changes the response headers before the caller sees them. */
export class ResponseHeadersHandler implements DispatchHandler {
  readonly #handler: DispatchHandler;
  readonly #edit: HeaderEdit;
  #view: EditedHeadersController | undefined;

  constructor(handler: DispatchHandler, edit: HeaderEdit) {
    this.#handler = handler;
    this.#edit = edit;
  }

  #viewOf(controller: DispatchController): DispatchController {
    this.#view ??= new EditedHeadersController(controller);
    return this.#view;
  }

  onRequestStart(controller: DispatchController, context: unknown): void {
    this.#handler.onRequestStart?.(this.#viewOf(controller), context);
  }
  onRequestUpgrade(controller: DispatchController, statusCode: number, headers: any, socket: any): void {
    this.#handler.onRequestUpgrade?.(this.#viewOf(controller), statusCode, headers, socket);
  }
  onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: any,
    statusMessage?: string,
  ): void {
    const edited = { ...(headers as Record<string, string | string[]>) };
    this.#edit(edited);
    const view = this.#viewOf(controller) as EditedHeadersController;
    view.rawHeaders = toRawHeaders(edited);
    this.#handler.onResponseStart?.(view, statusCode, edited, statusMessage);
  }
  onResponseData(controller: DispatchController, chunk: Buffer): void {
    this.#handler.onResponseData?.(this.#viewOf(controller), chunk);
  }
  onResponseEnd(controller: DispatchController, trailers: any): void {
    this.#handler.onResponseEnd?.(this.#viewOf(controller), trailers);
  }
  onResponseError(controller: DispatchController, err: Error): void {
    this.#handler.onResponseError?.(this.#viewOf(controller), err);
  }
}
