import type { DispatchController, DispatchHandler, ResponseHeaders, UpgradeSocket } from '../pipeline.ts';
import { ForwardingHandler } from './forwarding-handler.ts';
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
export class ResponseHeadersHandler extends ForwardingHandler {
  readonly #edit: HeaderEdit;
  #view: EditedHeadersController | undefined;

  constructor(handler: DispatchHandler, edit: HeaderEdit) {
    super(handler);
    this.#edit = edit;
  }

  #viewOf(controller: DispatchController): DispatchController {
    this.#view ??= new EditedHeadersController(controller);
    return this.#view;
  }

  override onRequestStart(controller: DispatchController, context: unknown): void {
    super.onRequestStart(this.#viewOf(controller), context);
  }
  override onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    socket: UpgradeSocket,
  ): void {
    super.onRequestUpgrade(this.#viewOf(controller), statusCode, headers, socket);
  }
  override onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): void {
    const edited = { ...(headers as Record<string, string | string[]>) };
    this.#edit(edited);
    const view = this.#viewOf(controller) as EditedHeadersController;
    view.rawHeaders = toRawHeaders(edited);
    super.onResponseStart(view, statusCode, edited, statusMessage);
  }
  override onResponseData(controller: DispatchController, chunk: Buffer): void {
    super.onResponseData(this.#viewOf(controller), chunk);
  }
  override onResponseEnd(controller: DispatchController, trailers: ResponseHeaders): void {
    super.onResponseEnd(this.#viewOf(controller), trailers);
  }
  override onResponseError(controller: DispatchController, err: Error): void {
    super.onResponseError(this.#viewOf(controller), err);
  }
}
