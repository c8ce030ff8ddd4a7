import { STATUS_CODES } from 'node:http';
import type { DispatchController, DispatchHandler } from '../pipeline.ts';

/**
 * A controller for a response the mesh makes itself (no connection behind it): it records what
 * is asked of it (abort, pause) and controls nothing else. Layer tests use it as the transport's.
 */
export class LocalController implements DispatchController {
  rawHeaders: Buffer[] | null = null;
  paused = false;
  aborted = false;
  reason: Error | null = null;
  abort(reason: Error): void {
    this.aborted = true;
    this.reason = reason;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

/**
 * THE way the mesh answers a request itself (fault abort, no route, chaos abort, the breaker's
 * fallback), through the normal handler callbacks, so callers and the layers above see an
 * ordinary response. Header names are lowercased; `extraHeaders` win over the defaults.
 */
export function respondLocally(
  handler: DispatchHandler,
  status: number,
  body: string | Uint8Array,
  extraHeaders: Record<string, string> = {},
): void {
  const controller = new LocalController();
  const payload = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body);
  const headers: Record<string, string> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(payload.length),
  };
  for (const name of Object.keys(extraHeaders)) headers[name.toLowerCase()] = extraHeaders[name] as string;
  headers['content-length'] = String(payload.length);
  controller.rawHeaders = toRawHeaders(headers);
  handler.onRequestStart?.(controller, {});
  if (controller.aborted) {
    handler.onResponseError?.(controller, controller.reason as Error);
    return;
  }
  handler.onResponseStart?.(controller, status, headers, STATUS_CODES[status] ?? '');
  if (controller.aborted) return;
  if (payload.length > 0) handler.onResponseData?.(controller, payload);
  if (controller.aborted) return;
  handler.onResponseEnd?.(controller, {});
}

/**
 * Headers as undici's raw list ([name, value, name, value...] as Buffers), which undici's fetch
 * reads in preference to the header object.
 */
export function toRawHeaders(headers: Record<string, string | string[] | undefined>): Buffer[] {
  const raw: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value])
      raw.push(Buffer.from(name, 'latin1'), Buffer.from(v, 'latin1'));
  }
  return raw;
}
