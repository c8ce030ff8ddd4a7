import { performance } from 'node:perf_hooks';
import { type Dispatcher, Request as UndiciRequest, fetch as undiciFetch } from 'undici';
import type { Fallback } from './breaker/breaker.ts';
import type { Clock } from './clock.ts';
import { assertConfigObject, formatValue } from './config/load.ts';
import type { MeshConfig, MeshConfigInput } from './config/schema.ts';
import { type InboundMiddleware, inboundMiddleware } from './context/inbound.ts';
import type { ContextRuntime } from './context/runtime.ts';
import type { ContextInit, MeshContext } from './context/store.ts';
import { MeshDispatcher } from './dispatcher.ts';
import {
  type ConfigIssue,
  InvalidUrlError,
  isMeshworkError,
  MeshClosedError,
  MeshworkConfigError,
  UnknownServiceError,
} from './errors.ts';
import { MeshAgent } from './http/agent.ts';
import { compileCallOptions, type MeshCallOptions, runWithCall } from './http/call-options.ts';
import { boot } from './live/boot.ts';
import { ConfigController } from './live/controller.ts';
import { CurrentServices } from './live/generation.ts';
import { RateLimitRuntime } from './ratelimit/runtime.ts';
import { MirrorGate } from './routing/mirror.ts';
import { buildStack } from './stack.ts';
import { type AdminHandler, createAdminHandler } from './telemetry/admin.ts';
import { type Logger, silentLogger } from './telemetry/logger.ts';
import { type MeshSnapshot, type ServiceSnapshot, serviceSnapshot } from './telemetry/snapshot.ts';
import { MeshIdentity } from './tls/identity.ts';
import {
  buildServerTlsOptions,
  type RotatableServer,
  type ServerTlsOptions,
  watchServer,
} from './tls/server.ts';
import { identitySnapshot } from './tls/snapshot.ts';
import { xdsLayer } from './xds/apply.ts';
import { prepareXds, XdsHandle } from './xds/index.ts';

/** How long close() lets in-flight requests finish before it destroys the pools. */
const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/** Options that only code can give (functions, objects), next to the JSON/YAML config. */
export interface MeshOptions {
  logger?: Logger;
  /** Monotonic clock in ms; tests pass a fake one. */
  clock?: Clock;
  /** Random source in [0, 1) for weighted splits and fault draws; tests pass a seeded one. */
  random?: () => number;
  /** Environment to read MESHWORK_CONFIG, MESHWORK_ZONE, CONSUL_HTTP_ADDR from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * `false` builds the stack without the telemetry layers (no spans, request metrics or request
   * channels; event telemetry and logs stay). For benchmarks; the default costs ~nothing anyway.
   */
  telemetry?: boolean;
  /** Per-service answers used while that service's circuit breaker is open (docs/resilience.md). */
  fallbacks?: Record<string, Fallback>;
  /**
   * TESTS ONLY: an undici Dispatcher that replaces every endpoint's connection pool, such as
   * undici's `MockAgent` or `fetchTransport()` (for msw). Each attempt goes to it with the origin
   * `http(s)://<service>`; routing, retries, balancing, context and telemetry still run.
   * See docs/testing.md.
   */
  transport?: Dispatcher;
}

export type CreateMeshInput = MeshConfigInput & MeshOptions;

export type { EndpointSnapshot, MeshSnapshot, ServiceSnapshot } from './telemetry/snapshot.ts';

type FetchInput = string | URL | { url: string };

/** `mesh.fetch`'s init: fetch's own, plus per-call overrides (docs/live-config.md#per-call-overrides). */
export interface MeshFetchInit extends RequestInit {
  meshwork?: MeshCallOptions | undefined;
}

export class Mesh {
  readonly dispatcher: MeshDispatcher;
  /** The logger given to createMesh (silent by default). */
  readonly logger: Logger;
  readonly #live: ConfigController;
  readonly #clock: Clock;
  readonly #mirrorGate: MirrorGate;
  readonly #identity: MeshIdentity | undefined;
  readonly #inbound: InboundMiddleware;
  /** The xDS client (src/xds), when `xds` is configured. */
  readonly #xds: XdsHandle | undefined;
  /** @internal The context machinery, for the server adapters (src/context/adapters.ts). */
  readonly contextRuntime: ContextRuntime;
  readonly #rateLimits: RateLimitRuntime | undefined;
  #closing: Promise<void> | undefined;
  /** `{ dispatcher }` for `mesh.fetch(url)` without an init (fetch only reads it). */
  #fetchInit: { dispatcher: Dispatcher } | undefined;
  #agent: MeshAgent | undefined;

  constructor(input: CreateMeshInput = {}) {
    assertConfigObject(input);
    checkOptions(input);
    const { logger, clock, random, env: envIn, telemetry, fallbacks, transport, ...config } = input;
    this.logger = logger ?? silentLogger;
    const env = envIn ?? process.env;
    // Every layer read and validated (MESHWORK_CONFIG, code, Istio directory); watchers built.
    const first = boot(config, env, this.logger);
    this.#clock = clock ?? (() => performance.now());
    // xds: the bootstrap is read first (its certificate provider may be the mesh identity).
    let xds: ReturnType<typeof prepareXds> | undefined;
    try {
      xds = first.config.xds
        ? prepareXds(first.config.xds, env, first.config.identity !== undefined)
        : undefined;
    } catch (err) {
      for (const s of first.sources) void s.close();
      throw err;
    }
    const identityConfig = first.config.identity ?? xds?.identity;
    const identity = identityConfig ? new MeshIdentity(identityConfig, this.logger) : undefined;
    this.#identity = identity;
    // The control plane's services are one more layer of the live config (src/xds/apply.ts).
    this.#xds = xds
      ? new XdsHandle(xds, {
          logger: this.logger,
          staticNames: Object.keys(first.config.services),
          apply: xdsLayer(() => this.#live, `xds ${xds.bootstrap.server.uri}`),
        })
      : undefined;
    try {
      // Rate limits are built once from the first config (a live update does not change them).
      this.#rateLimits = RateLimitRuntime.fromConfig(first.config, {
        clock: this.#clock,
        logger: this.logger,
        endpointsOf: (name) => this.#live?.generation.services.get(name)?.endpoints.size,
      });
      this.#live = new ConfigController(
        {
          clock: this.#clock,
          logger: this.logger,
          env,
          identity,
          fallbacks,
          rateLimits: this.#rateLimits,
          xds: this.#xds,
        },
        first.docs,
        first.config,
        first.validator,
      );
    } catch (err) {
      this.#xds?.close();
      identity?.close();
      void this.#rateLimits?.close();
      for (const s of first.sources) void s.close();
      throw err;
    }
    this.contextRuntime = this.#live.context;
    this.contextRuntime.gate = this.#rateLimits?.gate();
    // Peers judged by their own trust domain's bundle; aliases count as the own domain.
    this.contextRuntime.trust = identity?.trust;
    this.#inbound = inboundMiddleware(this.contextRuntime);
    this.#mirrorGate = new MirrorGate();
    const live = this.#live;
    // Never the first generation's map itself: that would keep removed services reachable.
    const current = new CurrentServices(() => live.generation.services);
    const stack = buildStack({
      clock: this.#clock,
      services: current,
      mirrorGate: this.#mirrorGate,
      random,
      telemetry: telemetry !== false,
      sidecarResponses: this.config.sidecarResponses === true,
      context: this.contextRuntime,
      transport,
    });
    this.dispatcher = new MeshDispatcher({
      services: current,
      unknownServices: 'reject',
      table: () => live.generation,
      stack,
      clock: this.#clock,
      onClose: (destroy) => this.#close(destroy),
      resolver: this.#xds,
    });
    for (const source of first.sources) live.watch(source);
  }

  /** The running config (validated); a live update replaces it. */
  get config(): MeshConfig {
    return this.#live.generation.config;
  }

  /**
   * Replaces the configuration of the running mesh: the same config as createMesh takes (merged
   * over MESHWORK_CONFIG the same way), without the code-only options. The whole config is
   * validated first: anything wrong rejects with MeshworkConfigError and the running config stays.
   * Otherwise routes, subsets, policies and services are swapped at once; what did not change
   * keeps its state (endpoints, pools, load estimates, ejections, breakers, retry budgets); a
   * request in flight finishes on the config it started with; removed services drain. See
   * docs/live-config.md.
   */
  async update(config: MeshConfigInput): Promise<void> {
    try {
      if (this.#closing) throw new MeshClosedError();
      assertConfigObject(config);
      const codeOnly = CODE_ONLY.filter((k) => Object.hasOwn(config, k));
      if (codeOnly.length > 0)
        throw new MeshworkConfigError(
          codeOnly.map((k) => ({
            path: k,
            message: 'is a code-only option of createMesh: it cannot change on a running mesh',
          })),
        );
    } catch (err) {
      this.#live.refuse('mesh.update', err as Error);
      throw err;
    }
    this.#live.apply('code', config, 'mesh.update');
  }

  /**
   * Runs `fn` with per-call overrides (timeout, retries, subset) for every mesh request it makes,
   * whatever the client (undici.request with mesh.dispatcher, the global dispatcher, axios...).
   * `mesh.fetch(url, { meshwork: options })` does the same for one call. Throws MeshworkConfigError
   * for a bad option.
   */
  withCallOptions<T>(options: MeshCallOptions, fn: () => T): T {
    return runWithCall(compileCallOptions(options, 'callOptions'), fn);
  }

  /**
   * WHATWG fetch through the mesh. `http://<service>/path` addresses a configured service.
   * Rejects with the MeshworkError itself (not fetch's generic "fetch failed") when the mesh
   * refuses the request: unknown service, no endpoints, closed... A URL that does not parse or that
   * carries credentials (`user:password@`) is refused with MESHWORK_ERR_INVALID_URL, its userinfo
   * redacted (fetch's own error would quote it).
   */
  fetch = async (input: FetchInput, init?: MeshFetchInit): Promise<Response> => {
    if (this.#closing) throw new MeshClosedError();
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const target = this.dispatcher.target(url);
    if (target === null || target.credentials)
      throw new InvalidUrlError(String(url), target ? 'credentials' : 'not-a-url');
    const gen = this.#live.generation;
    if (!gen.services.has(target.host) && gen.unknownServices !== 'passthrough' && !this.#xds) {
      throw new UnknownServiceError(target.host, [...gen.services.keys()]);
    }
    const request = isForeignRequest(input) ? toUndiciRequest(input) : (input as string | URL);
    try {
      if (init === undefined) {
        // The common call, `mesh.fetch(url)`: one shared init, no per-call copies.
        this.#fetchInit ??= { dispatcher: this.dispatcher };
        return (await undiciFetch(request as never, this.#fetchInit)) as unknown as Response;
      }
      const { meshwork, ...rest } = init;
      const call = compileCallOptions(meshwork);
      return (await runWithCall(call, () =>
        undiciFetch(request as never, { ...(rest as object), dispatcher: this.dispatcher }),
      )) as unknown as Response;
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (isMeshworkError(cause)) throw cause;
      throw withFailureShape(err, cause);
    }
  };

  /**
   * An `http.Agent` that sends node:http-based clients through the mesh: axios
   * (`httpAgent: mesh.agent`), got (`agent: { http: mesh.agent }`), node-fetch, superagent,
   * `http.request(url, { agent: mesh.agent })`. Requests to configured services run through
   * `mesh.dispatcher` (routing, retries, telemetry, context) without touching the network on the
   * way; other hosts follow `unknownServices`. See docs/http-clients.md.
   */
  /**
   * With xds, a host that is not a configured service may be a listener: it goes to the mesh
   * (which asks the control plane), unless unknown hosts pass through and xDS does not serve it.
   */
  #xdsClaims(host: string): boolean {
    const xds = this.#xds;
    if (!xds) return false;
    return this.#live.generation.unknownServices !== 'passthrough' || xds.serves(host.toLowerCase());
  }

  get agent(): MeshAgent {
    this.#agent ??= new MeshAgent({
      dispatcher: this.dispatcher,
      isService: (host) => this.#live.generation.services.has(host.toLowerCase()) || this.#xdsClaims(host),
      unknownServices: () => this.#live.generation.unknownServices,
      services: () => [...this.#live.generation.services.keys()],
      closed: () => this.#closing !== undefined,
    });
    return this.#agent;
  }

  /**
   * Connect-style `(req, res, next)` middleware for the server side (node:http, Express, Connect):
   * enforces `authorization` (403 with the reason) and makes the request's gateway context and
   * trace follow every outbound mesh call made while handling it. See docs/context.md.
   */
  inbound(): InboundMiddleware {
    return this.#inbound;
  }

  /** The current request context (inside mesh.inbound() or withContext), or undefined. */
  context(): MeshContext | undefined {
    return this.contextRuntime.current();
  }

  /** Runs fn with a context set (queue consumers, jobs): its outbound calls carry it. */
  withContext<T>(ctx: ContextInit | MeshContext, fn: () => T): T {
    return this.contextRuntime.run(this.contextRuntime.fromInit(ctx), fn);
  }

  /**
   * `https.createServer(mesh.serverTlsOptions(), …)`: the mesh identity's certificate, client
   * certificates required from the mesh CA. Pass the server to `mesh.watchServerTls(server)` to
   * follow certificate rotation. Throws when no `identity` is configured.
   */
  serverTlsOptions(opts: { requireClientCert?: boolean } = {}): ServerTlsOptions {
    if (!this.#identity)
      throw new Error('mesh.serverTlsOptions() needs the mesh-wide `identity { cert, key, ca }`');
    return buildServerTlsOptions(this.#identity, opts.requireClientCert ?? true);
  }

  /** Rotates a TLS server's certificate along with the identity files; returns an unsubscribe. */
  watchServerTls(server: RotatableServer): () => void {
    if (!this.#identity)
      throw new Error('mesh.watchServerTls() needs the mesh-wide `identity { cert, key, ca }`');
    return watchServer(this.#identity, server);
  }

  /** The live state of every service: endpoints, load, ejections, discovery... (see docs/telemetry.md). */
  snapshot(): MeshSnapshot {
    const now = this.#clock();
    const services: Record<string, ServiceSnapshot> = {};
    for (const [name, svc] of this.#live.generation.services) services[name] = serviceSnapshot(svc, now);
    return {
      zone: this.config.zone,
      closed: this.#closing !== undefined,
      takenAt: new Date().toISOString(),
      services,
      inbound: { ...this.contextRuntime.counters },
      ...(this.#identity ? { identity: identitySnapshot(this.#identity) } : {}),
      mirrors: {
        inFlight: this.#mirrorGate.inFlight,
        max: this.#mirrorGate.max,
        sent: this.#mirrorGate.sent,
        dropped: this.#mirrorGate.dropped,
      },
      config: this.#live.snapshot(),
      ...(this.#rateLimits ? { rateLimits: this.#rateLimits.snapshot() } : {}),
      ...(this.#xds ? { xds: this.#xds.snapshot() } : {}),
    };
  }

  /**
   * A node:http request handler serving the admin page (`/`) and `/snapshot` (JSON). Mount it
   * on an internal port or behind your own auth: it shows the mesh's topology.
   */
  adminHandler(): AdminHandler {
    return createAdminHandler(() => this.snapshot());
  }

  /** Closes every pool and watcher; resolves once nothing of the mesh holds the process open. */
  close(): Promise<void> {
    return this.#close(false);
  }

  #close(destroy: boolean): Promise<void> {
    this.#closing ??= (async () => {
      const timeout = destroy ? 0 : (this.config.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT_MS);
      await this.dispatcher.shutdownOwn(destroy);
      this.#xds?.close();
      const services = [...this.#live.generation.services.values()];
      await Promise.all([this.#live.close(timeout), ...services.map((s) => s.close(timeout))]);
      this.#agent?.destroy();
      await this.#rateLimits?.close();
      this.#identity?.close();
    })();
    return this.#closing;
  }
}

/**
 * The code-only options have the types they are used as: a config parsed from JSON or YAML that
 * carries one of these keys gets a MeshworkConfigError, not a TypeError later.
 */
function checkOptions(input: object): void {
  const o = input as Record<string, unknown>;
  const issues: ConfigIssue[] = [];
  const bad = (key: string, expected: string) =>
    issues.push({ path: key, message: `${formatValue(o[key])} is not ${expected} (a code-only option)` });
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  for (const key of ['clock', 'random'])
    if (o[key] !== undefined && typeof o[key] !== 'function') bad(key, 'a function');
  if (o.telemetry !== undefined && typeof o.telemetry !== 'boolean') bad('telemetry', 'a boolean');
  if (o.env !== undefined && !isObject(o.env)) bad('env', 'an object');
  if (
    o.transport !== undefined &&
    typeof (o.transport as { dispatch?: unknown } | null)?.dispatch !== 'function'
  )
    bad('transport', 'an undici Dispatcher (a MockAgent, fetchTransport())');
  const logger = o.logger as Record<string, unknown> | undefined;
  if (logger !== undefined && !(isObject(logger) && LOG_LEVELS.every((l) => typeof logger[l] === 'function')))
    bad('logger', 'a logger (debug, info, warn and error functions)');
  const fallbacks = o.fallbacks as Record<string, unknown> | undefined;
  if (fallbacks !== undefined) {
    if (!isObject(fallbacks)) bad('fallbacks', 'an object of functions');
    else
      for (const [name, f] of Object.entries(fallbacks))
        if (typeof f !== 'function')
          issues.push({ path: `fallbacks.${name}`, message: `${formatValue(f)} is not a function` });
  }
  if (issues.length > 0) throw new MeshworkConfigError(issues);
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** The options only createMesh takes (functions and objects; fixed for the mesh's life). */
const CODE_ONLY = ['logger', 'clock', 'random', 'env', 'telemetry', 'fallbacks', 'transport'] as const;

/** Builds a mesh from config (validated completely, synchronously). Throws MeshworkConfigError. */
export function createMesh(config?: CreateMeshInput): Mesh {
  return new Mesh(config);
}

/**
 * fetch's `TypeError: fetch failed` for a transport failure (its `cause`: ECONNREFUSED,
 * UND_ERR_SOCKET...) stays a TypeError, as fetch code expects, and gets the cause's `code`,
 * `attempts` and `endpoint` (docs/errors.md).
 */
function withFailureShape(err: unknown, cause: unknown): unknown {
  if (typeof err !== 'object' || err === null || typeof cause !== 'object' || cause === null) return err;
  const c = cause as { code?: unknown; attempts?: unknown; endpoint?: unknown };
  if (typeof c.attempts !== 'number' || !Object.isExtensible(err)) return err;
  Object.assign(err, { code: c.code, attempts: c.attempts, endpoint: c.endpoint });
  return err;
}

function isForeignRequest(input: FetchInput): input is Request {
  return typeof input === 'object' && !(input instanceof URL) && !(input instanceof UndiciRequest);
}

/** A Request from another fetch implementation (Node's global one) becomes an undici Request. */
function toUndiciRequest(input: Request): UndiciRequest {
  return new UndiciRequest(input.url, {
    method: input.method,
    headers: input.headers as never,
    body: input.body as never,
    redirect: input.redirect,
    signal: input.signal as never,
    ...(input.body ? { duplex: 'half' } : {}),
  } as never);
}
