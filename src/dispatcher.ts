import { Agent, Dispatcher, Dispatcher1Wrapper } from 'undici';
import type { Clock } from './clock.ts';
import {
  InvalidUrlError,
  MeshClosedError,
  requestFailure,
  TlsRequiredError,
  UnknownServiceError,
} from './errors.ts';
import { currentCall } from './http/call-options.ts';
import { ForwardingHandler } from './http/forwarding-handler.ts';
import { normalizeHeaders } from './http/headers.ts';
import { classify } from './outcome.ts';
import {
  type Dispatch,
  type DispatchController,
  type DispatchHandler,
  failRequest,
  newMeshRequest,
} from './pipeline.ts';
import type { ServiceRuntime } from './service.ts';

interface Target {
  /** Service name (the URL's hostname, lowercased). */
  host: string;
  /** What the caller wrote: hostname[:port], sent upstream as Host. */
  authority: string;
  /** The scheme is https: the request must go out over TLS, never in cleartext. */
  secure: boolean;
  /** The URL carries userinfo (`user:password@`): refused, never sent. */
  credentials: boolean;
}

const TARGET_CACHE_MAX = 1024;

/** undici's adapter for v1-shaped handlers (present at runtime, missing from its types). */
interface LegacyAdapter {
  wrapHandler(handler: unknown): DispatchHandler;
}

/**
 * Services found by the URL's authority as written rather than by host name: the listeners of an
 * xDS control plane (src/xds). The first request to an authority may wait (bounded) for it.
 */
export interface AuthorityResolver {
  /** True for a service name the resolver made: such a service is never found by host name. */
  owns(name: string): boolean;
  /** Its service name, null when there is none, or a promise of either (rejected when it cannot tell in time). */
  resolve(authority: string, secure: boolean): string | null | Promise<string | null>;
}

/** The services a request can address, and what to do with a host that is none of them. */
export interface DispatchTable {
  readonly services: ReadonlyMap<string, ServiceRuntime>;
  readonly unknownServices: 'reject' | 'passthrough';
}

export interface MeshDispatcherOptions extends DispatchTable {
  /**
   * The running configuration (live updates replace it), read once as each request enters: the
   * request keeps that one to its end. Without it, `services` and `unknownServices` are fixed.
   */
  table?: () => DispatchTable;
  stack: Dispatch;
  clock: Clock;
  onClose: (destroy: boolean) => Promise<void>;
  /** Hosts that are not configured services are looked up here by authority (xDS). */
  resolver?: AuthorityResolver | undefined;
}

/**
 * The mesh as an undici Dispatcher: `undici.request(url, { dispatcher })`, `undici.stream`,
 * undici's `fetch`, or `setGlobalDispatcher(mesh.dispatcher)`. `http://<service>/path`
 * addresses a configured service; the request then runs through the layer stack.
 * Handlers in undici's v1 shape (onConnect/onHeaders/onData/onComplete/onError), which
 * Node's bundled undici may still send, are adapted.
 */
export class MeshDispatcher extends Dispatcher {
  readonly #opts: MeshDispatcherOptions;
  readonly #targets = new Map<string, Target | null>();
  #passthrough: Agent | undefined;
  #closed = false;

  constructor(opts: MeshDispatcherOptions) {
    super();
    this.#opts = opts;
  }

  /** Resolves an origin to its mesh target; null when it is not a valid http(s) URL origin. */
  target(origin: unknown): Target | null {
    const key =
      typeof origin === 'string'
        ? origin
        : origin instanceof URL
          ? origin.username === '' && origin.password === ''
            ? origin.origin
            : origin.href
          : String(origin);
    let t = this.#targets.get(key);
    if (t !== undefined) return t;
    try {
      const url = new URL(key);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('not http(s)');
      t = {
        host: url.hostname.toLowerCase(),
        authority: url.host,
        secure: url.protocol === 'https:',
        credentials: url.username !== '' || url.password !== '',
      };
    } catch {
      t = null;
    }
    if (this.#targets.size >= TARGET_CACHE_MAX) this.#targets.clear();
    this.#targets.set(key, t);
    return t;
  }

  isKnown(origin: unknown): boolean {
    const t = this.target(origin);
    return t !== null && (this.#opts.table?.() ?? this.#opts).services.has(t.host);
  }

  override dispatch(options: Dispatcher.DispatchOptions, rawHandler: Dispatcher.DispatchHandler): boolean {
    const handler = (
      typeof (rawHandler as { onRequestStart?: unknown }).onRequestStart === 'function'
        ? rawHandler
        : (Dispatcher1Wrapper as unknown as LegacyAdapter).wrapHandler(rawHandler)
    ) as DispatchHandler;
    if (this.#closed) {
      failRequest(handler, new MeshClosedError());
      return false;
    }
    const target = this.target(options.origin);
    if (target === null || target.credentials) {
      const given = options.origin instanceof URL ? options.origin.href : String(options.origin);
      failRequest(handler, new InvalidUrlError(given, target ? 'credentials' : 'not-a-url'));
      return false;
    }
    const table = this.#opts.table?.() ?? this.#opts;
    const service = table.services.get(target.host);
    const resolver = this.#opts.resolver;
    if (resolver !== undefined && (service === undefined || resolver.owns(target.host))) {
      const found = resolver.resolve(target.authority, target.secure);
      if (found === null || typeof found === 'string')
        return this.#route(
          table,
          found === null ? undefined : table.services.get(found),
          target,
          options,
          handler,
        );
      // The first request to this authority waits (bounded) for the control plane's answer, then
      // runs on the configuration of that moment.
      found.then(
        (name) => {
          const now = this.#opts.table?.() ?? this.#opts;
          this.#route(now, name === null ? undefined : now.services.get(name), target, options, handler);
        },
        (err: Error) => failRequest(handler, err),
      );
      return true;
    }
    return this.#route(table, service, target, options, handler);
  }

  #route(
    table: DispatchTable,
    service: ServiceRuntime | undefined,
    target: Target,
    options: Dispatcher.DispatchOptions,
    handler: DispatchHandler,
  ): boolean {
    if (this.#closed) {
      failRequest(handler, new MeshClosedError());
      return false;
    }
    if (!service) {
      if (table.unknownServices === 'passthrough') {
        this.#passthrough ??= new Agent();
        return this.#passthrough.dispatch(options, new PassthroughHandler(handler, target));
      }
      failRequest(handler, new UnknownServiceError(target.host, [...table.services.keys()]));
      return false;
    }
    // https:// to a service without TLS is refused, unless its routes may send it elsewhere: the
    // routing layer then checks the destination it picks.
    if (target.secure && service.tls === undefined && service.router.size === 0) {
      failRequest(handler, new TlsRequiredError(service.name));
      return false;
    }
    const headers = normalizeHeaders(options.headers);
    if (headers.host === undefined) headers.host = target.authority;
    // `servername` present from the start (the endpoint fills it in), so the options keep one shape.
    const opts = { ...options, headers, servername: (options as { servername?: string }).servername };
    const call = currentCall();
    const req = newMeshRequest(service, opts, target.authority, this.#opts.clock(), {
      services: table.services,
      call,
      subset: call?.subset,
    });
    this.#opts.stack(req, handler);
    return true;
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const p = this.#shutdown(false);
    if (callback) {
      p.then(callback, callback);
      return;
    }
    return p;
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: unknown, b?: unknown): Promise<void> | void {
    const callback = (typeof a === 'function' ? a : b) as (() => void) | undefined;
    const p = this.#shutdown(true);
    if (callback) {
      p.then(callback, callback);
      return;
    }
    return p;
  }

  /** Called by the mesh itself: stop taking requests and close the passthrough agent. */
  async shutdownOwn(destroy: boolean): Promise<void> {
    this.#closed = true;
    const agent = this.#passthrough;
    this.#passthrough = undefined;
    if (agent) await (destroy ? agent.destroy() : agent.close()).catch(() => {});
  }

  #shutdown(destroy: boolean): Promise<void> {
    return this.#opts.onClose(destroy);
  }
}

/** A host that is not a service, sent as is: its failure gets the same shape (one attempt). */
class PassthroughHandler extends ForwardingHandler {
  readonly #endpoint: string;

  constructor(handler: DispatchHandler, target: Target) {
    super(handler);
    const hasPort = /:\d+$/.test(target.authority);
    this.#endpoint = hasPort ? target.authority : `${target.authority}:${target.secure ? 443 : 80}`;
  }

  override onResponseError(controller: DispatchController, err: Error): void {
    super.onResponseError(
      controller,
      classify(err) === 'cancelled' ? err : requestFailure(err, 1, this.#endpoint),
    );
  }
}
