import { AsyncLocalStorage } from 'node:async_hooks';
import {
  Agent,
  type AgentOptions,
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  Server,
  type ServerResponse,
} from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { hasPropagator, injectActive } from '../context/otel.ts';
import type { MeshDispatcher } from '../dispatcher.ts';
import {
  MeshAbortedError,
  MeshClosedError,
  UnknownServiceError,
  UnsupportedRequestError,
} from '../errors.ts';
import type { DispatchController, DispatchHandler, ResponseHeaders, UpgradeSocket } from '../pipeline.ts';
import { MemorySocket } from './memory-socket.ts';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1): they belong to one connection, the in-memory one here,
 * and are not forwarded (undici refuses most of them in a request anyway). `expect` is answered
 * by the in-memory server (100 Continue); the mesh sends the body as it comes.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'expect',
  'proxy-authenticate',
  'proxy-authorization',
]);

export interface MeshAgentOptions {
  dispatcher: MeshDispatcher;
  /** Whether a host name is a configured service (`http://<host>:<port>`). */
  isService: (host: string) => boolean;
  unknownServices: () => 'reject' | 'passthrough';
  /** Known service names, for the unknown-service error. */
  services: () => string[];
  /** True once the mesh is closing. */
  closed: () => boolean;
}

/** The Agent method node:http calls, missing from its public types. */
interface AgentInternals {
  addRequest(req: ClientRequest, options: AddRequestOptions): void;
}

type AddRequestOptions = AgentOptions & {
  host?: string;
  hostname?: string;
  port?: number | string;
  socketPath?: string;
};

/**
 * `mesh.agent`: an `http.Agent` for node:http clients (axios, got, node-fetch, superagent,
 * `http.request`). A request to a configured service never touches the network here: the agent
 * gives node:http an in-memory connection (src/http/memory-socket.ts) whose other end is parsed
 * by Node's own HTTP server parser, and each parsed request goes through `mesh.dispatcher`
 * exactly as `mesh.fetch` does (routing, retries, balancing, context, telemetry), its body
 * streamed both ways with backpressure. Hosts that are not services go through a plain
 * keep-alive `http.Agent` when `unknownServices` is `passthrough`, and are refused otherwise.
 * Upgrades (WebSocket) and CONNECT are refused with MESHWORK_ERR_UNSUPPORTED_REQUEST.
 */
export class MeshAgent extends Agent {
  readonly #opts: MeshAgentOptions;
  readonly #server: Server;
  #passthrough: Agent | undefined;
  readonly #sockets = new Set<MemorySocket>();

  constructor(opts: MeshAgentOptions) {
    // Keep-alive: in-memory connections are reused as node:http reuses TCP ones (cheap either way).
    super({ keepAlive: true });
    this.#opts = opts;
    this.#server = new InnerServer((req, res) => this.#forward(req, res));
  }

  /** node:http's Agent hook, called for every request made with this agent. */
  addRequest(req: ClientRequest, options: AddRequestOptions): void {
    const host = options.socketPath ? undefined : (options.hostname ?? options.host ?? 'localhost');
    const known = host !== undefined && this.#opts.isService(host);
    const passthrough = !known && this.#opts.unknownServices() === 'passthrough';
    const refused = passthrough ? undefined : this.#refusal(req, host ?? `unix:${options.socketPath}`, known);
    if (refused) {
      // node:http's own path for a connection that failed: the request emits 'error' with it.
      (req as unknown as { onSocket(s: null, e: Error): void }).onSocket(null, refused);
      return;
    }
    if (passthrough) {
      this.#passthrough ??= new Agent({ keepAlive: true });
      (this.#passthrough as unknown as AgentInternals).addRequest(req, options);
      return;
    }
    // The caller's async context (meshwork's request context, the active OpenTelemetry span),
    // taken where the request was made: the mesh dispatch runs in it, as mesh.fetch would.
    const run = AsyncLocalStorage.snapshot();
    req.once('socket', (socket) => {
      if (socket instanceof MemorySocket) socket.run = run;
    });
    (Agent.prototype as unknown as AgentInternals).addRequest.call(this, req, options);
  }

  /** Why a request cannot go through the mesh, if it cannot. */
  #refusal(req: ClientRequest, host: string, known: boolean): Error | undefined {
    if (this.#opts.closed()) return new MeshClosedError();
    if (req.method.toUpperCase() === 'CONNECT')
      return new UnsupportedRequestError(
        'a CONNECT request',
        'meshwork routes HTTP requests, it opens no tunnels; use a plain http.Agent for proxies',
      );
    if (!known) return new UnknownServiceError(host, this.#opts.services());
    const upgrade = req.getHeader('upgrade');
    if (upgrade !== undefined)
      return new UnsupportedRequestError(
        `an Upgrade request (${String(upgrade)})`,
        'WebSocket and other upgrades go through mesh.dispatcher (undici) or a plain http.Agent',
      );
    return undefined;
  }

  /** A new in-memory connection for `host:port`; its other end goes to the in-memory server. */
  override createConnection(options: AddRequestOptions): Duplex {
    const host = options.hostname ?? options.host ?? 'localhost';
    const port = Number(options.port ?? 80);
    const hostForUrl = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    const origin = port === 80 ? `http://${hostForUrl}` : `http://${hostForUrl}:${port}`;
    const [client, server] = MemorySocket.pair(origin);
    this.#sockets.add(client);
    client.once('close', () => this.#sockets.delete(client));
    this.#server.emit('connection', server);
    return client;
  }

  /** Closes every in-memory connection and the passthrough agent's sockets. */
  override destroy(): void {
    super.destroy();
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    this.#passthrough?.destroy();
    this.#passthrough = undefined;
  }

  /** One parsed request: through mesh.dispatcher, its answer written back on the connection. */
  #forward(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as unknown as MemorySocket;
    const client = socket.peer;
    const run = client.run;
    client.run = undefined;
    const dispatch = () => {
      const h = req.headers;
      const hasBody =
        h['transfer-encoding'] !== undefined ||
        (h['content-length'] !== undefined && h['content-length'] !== '0');
      const options: Dispatcher.DispatchOptions = {
        origin: socket.origin,
        path: req.url ?? '/',
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: forwardHeaders(req.rawHeaders, ownTraceparent(h.traceparent)),
        body: hasBody ? req : null,
      };
      this.#opts.dispatcher.dispatch(options, new AgentResponse(res, client));
    };
    if (run) run(dispatch);
    else dispatch();
  }
}

/**
 * True when the request's `traceparent` names the active span itself: OpenTelemetry's http
 * instrumentation injected it for its span of this in-memory hop. It is dropped (with
 * `tracestate`), so meshwork's CLIENT span, a child of that span, is the parent the upstream
 * sees, as with mesh.fetch; a `traceparent` the caller set by hand is kept.
 */
function ownTraceparent(traceparent: string | string[] | undefined): boolean {
  if (typeof traceparent !== 'string' || !hasPropagator()) return false;
  const active: Record<string, string> = {};
  injectActive(active);
  return active.traceparent === traceparent;
}

/**
 * The in-memory HTTP server: Node's own parser reads what node:http's client wrote. Never
 * listens. Its 'request' events go straight to the agent (not through `Server.prototype.emit`,
 * which OpenTelemetry's http instrumentation wraps: this hop is not a server of the app and
 * must not show as a SERVER span or in `http.server.*` metrics).
 */
class InnerServer extends Server {
  readonly #onRequest: (req: IncomingMessage, res: ServerResponse) => void;

  constructor(onRequest: (req: IncomingMessage, res: ServerResponse) => void) {
    // No request or header timeouts of its own (the mesh and the client bound the wait), no
    // `Keep-Alive: timeout` hint added to answers, no Host header demanded (the connection
    // names the origin), no Date header added (the upstream's own is kept).
    super({ requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: 0, requireHostHeader: false });
    this.#onRequest = onRequest;
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'request') {
      const res = args[1] as ServerResponse;
      res.sendDate = false;
      this.#onRequest(args[0] as IncomingMessage, res);
      return true;
    }
    // 'upgrade' and 'connect' have no listener, so Node never emits them (addRequest refuses
    // both); a request Node cannot parse gets Node's own 400 or 431 answer ('clientError').
    return (Server.prototype.emit as (e: string | symbol, ...a: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  }
}

/** Request headers to forward: the raw list (case and order kept) without hop-by-hop ones. */
function forwardHeaders(raw: string[], dropTrace: boolean): string[] {
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() === 'connection') {
      listed ??= new Set();
      for (const t of (raw[i + 1] as string).split(',')) listed.add(t.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    if (dropTrace && (name === 'traceparent' || name === 'tracestate')) continue;
    out.push(raw[i] as string, raw[i + 1] as string);
  }
  return out;
}

/** Response headers to write back: without the upstream connection's hop-by-hop headers. */
function responseHeaders(headers: ResponseHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connection = headers.connection;
  const listed =
    connection === undefined
      ? undefined
      : new Set(
          (Array.isArray(connection) ? connection.join(',') : String(connection))
            .split(',')
            .map((t) => t.trim().toLowerCase()),
        );
  for (const key of Object.keys(headers)) {
    if (HOP_BY_HOP.has(key) || listed?.has(key)) continue;
    const v = headers[key];
    if (v !== undefined) out[key] = v as string | string[];
  }
  return out;
}

/** Writes the mesh's answer back on the in-memory connection, or fails it with the mesh's error. */
class AgentResponse implements DispatchHandler {
  readonly #res: ServerResponse;
  readonly #client: MemorySocket;
  #controller: DispatchController | undefined;
  #done = false;
  #chunked = false;

  constructor(res: ServerResponse, client: MemorySocket) {
    this.#res = res;
    this.#client = client;
    // The caller went away (aborted, destroyed its request or socket): abort the mesh request.
    res.once('close', () => {
      if (this.#done) return;
      this.#done = true;
      this.#controller?.abort(new MeshAbortedError(new URL(client.origin).hostname));
    });
  }

  onRequestStart(controller: DispatchController): void {
    this.#controller = controller;
    if (this.#done) controller.abort(new MeshAbortedError(new URL(this.#client.origin).hostname));
  }

  onRequestUpgrade(
    _c: DispatchController,
    _status: number,
    _headers: ResponseHeaders,
    socket: UpgradeSocket,
  ): void {
    socket.destroy();
    this.#fail(new UnsupportedRequestError('an upgrade', 'the upstream switched protocols'));
  }

  onResponseStart(
    controller: DispatchController,
    status: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): void {
    if (this.#done) return;
    const out = responseHeaders(headers);
    this.#chunked = out['content-length'] === undefined;
    try {
      this.#res.writeHead(status, statusMessage || undefined, out);
    } catch (err) {
      controller.abort(err as Error);
      this.#fail(err as Error);
    }
  }

  onResponseData(controller: DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(_c: DispatchController, trailers: ResponseHeaders): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#chunked && trailers && Object.keys(trailers).length > 0)
      this.#res.addTrailers(trailers as OutgoingHttpHeaders);
    this.#res.end();
  }

  onResponseError(_c: DispatchController, err: Error): void {
    this.#fail(err);
  }

  /** The request failed: the client sees the mesh's error itself, as a connection error. */
  #fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#client.destroy(err);
  }
}
