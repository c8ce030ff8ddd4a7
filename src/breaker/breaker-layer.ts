import { CircuitOpenError } from '../errors.ts';
import { ForwardingHandler } from '../http/forwarding-handler.ts';
import { type DispatchController, type DispatchHandler, deadController, type Layer } from '../pipeline.ts';
import type { Fallback, Settle } from './breaker.ts';

/**
 * The service-level circuit breaker, above retries: it judges the outcome the caller gets
 * (after retries). A 5xx answer or an error is a failure; the caller's own abort counts as
 * nothing. When open, the request fails fast with MESHWORK_ERR_CIRCUIT_OPEN, or gets the
 * service's fallback answer when one was given to createMesh.
 */
export function breakerLayer(): Layer {
  return (next) => (req, handler) => {
    const breaker = req.service.breaker;
    if (!breaker) return next(req, handler);
    const settle = breaker.tryAcquire();
    if (settle) return next(req, new BreakerHandler(handler, settle));
    const fb = req.service.fallback;
    if (fb) return deliverFallback(handler, fb, req.service.name, String(req.opts.method), req.opts.path);
    handler.onRequestStart?.(deadController, {});
    handler.onResponseError?.(deadController, new CircuitOpenError(req.service.name));
  };
}

function deliverFallback(
  handler: DispatchHandler,
  fb: Fallback,
  service: string,
  method: string,
  path: string,
): void {
  let res: ReturnType<Fallback>;
  try {
    res = fb({ service, method, path });
  } catch (err) {
    handler.onRequestStart?.(deadController, {});
    handler.onResponseError?.(deadController, err instanceof Error ? err : new Error(String(err)));
    return;
  }
  const headers: Record<string, string> = { 'x-meshwork-fallback': 'circuit-open' };
  for (const [k, v] of Object.entries(res.headers ?? {})) headers[k.toLowerCase()] = v;
  // undici's fetch reads response headers from controller.rawHeaders.
  const rawHeaders: Buffer[] = [];
  for (const [k, v] of Object.entries(headers)) rawHeaders.push(Buffer.from(k), Buffer.from(v));
  const controller = { ...deadController, rawHeaders };
  handler.onRequestStart?.(controller, {});
  handler.onResponseStart?.(controller, res.status, headers, '');
  if (res.body !== undefined)
    handler.onResponseData?.(
      controller,
      typeof res.body === 'string' ? Buffer.from(res.body) : Buffer.from(res.body),
    );
  handler.onResponseEnd?.(controller, {});
}

class BreakerHandler extends ForwardingHandler {
  #settle: Settle | undefined;
  #controller: DispatchController | undefined;

  constructor(handler: DispatchHandler, settle: Settle) {
    super(handler);
    this.#settle = settle;
  }

  #done(ok: boolean): void {
    const s = this.#settle;
    this.#settle = undefined;
    s?.(ok);
  }

  override onRequestStart(controller: DispatchController, context: unknown): void {
    this.#controller = controller;
    super.onRequestStart(controller, context);
  }

  override onRequestUpgrade(
    controller: DispatchController,
    statusCode: number,
    headers: any,
    socket: any,
  ): void {
    this.#done(true);
    super.onRequestUpgrade(controller, statusCode, headers, socket);
  }

  override onResponseStart(
    controller: DispatchController,
    statusCode: number,
    headers: any,
    statusMessage?: string,
  ): void {
    this.#done(statusCode < 500);
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  override onResponseEnd(controller: DispatchController, trailers: any): void {
    super.onResponseEnd(controller, trailers);
  }

  override onResponseError(controller: DispatchController, err: Error): void {
    // The caller's abort says nothing about the service: release without counting a failure.
    this.#done(this.#controller?.aborted === true);
    super.onResponseError(controller, err);
  }
}
