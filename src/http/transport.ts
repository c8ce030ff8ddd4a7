/**
 * The test seam (docs/testing.md): `createMesh({ transport })` sends every attempt that would go
 * to an endpoint's undici Pool to another Dispatcher instead, such as undici's `MockAgent`, or
 * `fetchTransport()`, which hands it to the global `fetch` that msw intercepts. Everything above
 * the pool still runs: routing, retries, balancing (each endpoint's counters), outlier detection,
 * context, telemetry. For tests only: the endpoints' own addresses are not used.
 */
import { Readable } from 'node:stream';
import { Dispatcher, errors as undiciErrors } from 'undici';
import type { DispatchController, DispatchHandler, EndpointDispatch, MeshRequest } from '../pipeline.ts';

/**
 * The bottom of the stack with a transport: the attempt goes to `transport` with the origin the
 * upstream would be addressed as, `http(s)://<Host>` (the final Host header, after routing's
 * rewrites; https when the destination service has TLS), so a MockAgent intercepts
 * `http://travels` and an msw handler `http://travels/trips`.
 */
export function viaTransport(transport: Dispatcher): EndpointDispatch {
  return (_ep, req, handler) => {
    transport.dispatch({ ...req.opts, origin: originOf(req) } as Dispatcher.DispatchOptions, handler);
  };
}

function originOf(req: MeshRequest): string {
  const host = req.opts.headers.host;
  const authority = (Array.isArray(host) ? host[0] : host) ?? req.authority;
  return `${req.service.tls ? 'https' : 'http'}://${authority}`;
}

/**
 * A Dispatcher that makes each request with the global `fetch` (looked up per request, so msw's
 * `server.listen()` may come after createMesh), or with the `fetch` given. A network error of
 * fetch (msw's `HttpResponse.error()`) becomes a connection reset (`UND_ERR_SOCKET`), which the
 * mesh judges and retries as it would a real one; a real connection error keeps its own code.
 */
export function fetchTransport(fetchImpl?: typeof fetch): Dispatcher {
  return new FetchTransport(fetchImpl);
}

class FetchTransport extends Dispatcher {
  readonly #fetch: typeof fetch | undefined;

  constructor(fetchImpl: typeof fetch | undefined) {
    super();
    this.#fetch = fetchImpl;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    new FetchCall(this.#fetch ?? globalThis.fetch, options, handler as DispatchHandler).start();
    return true;
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    if (callback) {
      callback();
      return;
    }
    return Promise.resolve();
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: unknown, b?: unknown): Promise<void> | void {
    const callback = (typeof a === 'function' ? a : b) as (() => void) | undefined;
    if (callback) {
      callback();
      return;
    }
    return Promise.resolve();
  }
}

class FetchCall implements DispatchController {
  readonly #fetch: typeof fetch;
  readonly #options: Dispatcher.DispatchOptions;
  readonly #handler: DispatchHandler;
  readonly #abort = new AbortController();
  #done = false;
  #resume: (() => void) | undefined;
  aborted = false;
  paused = false;
  reason: Error | null = null;
  /** The response's headers as a flat [name, value, ...] list: undici's fetch reads them here. */
  rawHeaders: string[] | null = null;
  rawTrailers: string[] | null = null;

  constructor(f: typeof fetch, options: Dispatcher.DispatchOptions, handler: DispatchHandler) {
    this.#fetch = f;
    this.#options = options;
    this.#handler = handler;
  }

  abort(reason?: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new undiciErrors.RequestAbortedError();
    this.#abort.abort(this.reason);
    this.#fail(this.reason);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const r = this.#resume;
    this.#resume = undefined;
    r?.();
  }

  start(): void {
    this.#handler.onRequestStart?.(this, {});
    if (this.aborted) return;
    this.#run().catch((err: unknown) => this.#fail(networkError(err)));
  }

  async #run(): Promise<void> {
    const o = this.#options;
    const url = new URL(o.path, String(o.origin));
    const headers = new Headers();
    for (const [name, value] of headerPairs(o.headers))
      if (name.toLowerCase() !== 'host') headers.append(name, value);
    const body = requestBody(o.body);
    const res = await this.#fetch(url, {
      method: o.method,
      headers,
      body,
      redirect: 'manual',
      signal: this.#abort.signal,
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit);
    if (this.#done) return;
    const out: Record<string, string | string[]> = {};
    const raw: string[] = [];
    res.headers.forEach((value, name) => {
      if (name === 'set-cookie') return;
      out[name] = value;
      raw.push(name, value);
    });
    const cookies = res.headers.getSetCookie();
    if (cookies.length > 0) out['set-cookie'] = cookies;
    for (const c of cookies) raw.push('set-cookie', c);
    this.rawHeaders = raw;
    this.#handler.onResponseStart?.(this, res.status, out, res.statusText);
    if (res.body) {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (this.#done) return;
        if (this.paused) await new Promise<void>((r) => (this.#resume = r));
        if (this.#done) return;
        this.#handler.onResponseData?.(this, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      }
    }
    if (this.#done) return;
    this.#done = true;
    this.#handler.onResponseEnd?.(this, {});
  }

  #fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#resume?.();
    this.#handler.onResponseError?.(this, err);
  }
}

function* headerPairs(headers: Dispatcher.DispatchOptions['headers']): Generator<[string, string]> {
  if (headers == null) return;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) yield [String(headers[i]), String(headers[i + 1])];
    return;
  }
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) for (const v of value) yield [name, String(v)];
    else yield [name, String(value)];
  }
}

type RequestBody = RequestInit['body'];

function requestBody(body: unknown): RequestBody {
  if (body == null) return null;
  if (typeof body === 'string' || body instanceof Uint8Array) return body as RequestBody;
  if (body instanceof Readable) return Readable.toWeb(body) as unknown as RequestBody;
  if (typeof body === 'object' && Symbol.asyncIterator in body)
    return Readable.toWeb(Readable.from(body as AsyncIterable<unknown>)) as unknown as RequestBody;
  return String(body);
}

/** fetch's TypeError for a network failure: its cause when that has a code, else a reset. */
function networkError(err: unknown): Error {
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (typeof (cause as { code?: unknown } | null)?.code === 'string') return cause as Error;
  if ((err as { name?: unknown } | null)?.name === 'AbortError') return err as Error;
  const message = err instanceof Error ? err.message : String(err);
  return new undiciErrors.SocketError(`network error from the test transport (fetch): ${message}`);
}
