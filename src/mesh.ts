import { performance } from 'node:perf_hooks';
import { Request as UndiciRequest, fetch as undiciFetch } from 'undici';
import type { Clock } from './balancer/types.ts';
import type { Fallback } from './breaker/breaker.ts';
import { loadConfig } from './config/load.ts';
import type { MeshConfig, MeshConfigInput } from './config/schema.ts';
import { MeshDispatcher } from './dispatcher.ts';
import { isMeshworkError, MeshClosedError, UnknownServiceError } from './errors.ts';
import { MirrorGate } from './routing/mirror.ts';
import { ServiceRuntime } from './service.ts';
import { buildStack } from './stack.ts';
import { type AdminHandler, createAdminHandler } from './telemetry/admin.ts';
import { type Logger, silentLogger } from './telemetry/logger.ts';
import { type MeshSnapshot, type ServiceSnapshot, serviceSnapshot } from './telemetry/snapshot.ts';

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
}

export type CreateMeshInput = MeshConfigInput & MeshOptions;

export type { EndpointSnapshot, MeshSnapshot, ServiceSnapshot } from './telemetry/snapshot.ts';

type FetchInput = string | URL | { url: string };

export class Mesh {
  readonly config: MeshConfig;
  readonly dispatcher: MeshDispatcher;
  /** The logger given to createMesh (silent by default). */
  readonly logger: Logger;
  readonly #services = new Map<string, ServiceRuntime>();
  readonly #clock: Clock;
  readonly #closeTimeoutMs: number;
  readonly #mirrorGate: MirrorGate;
  #closing: Promise<void> | undefined;

  constructor(input: CreateMeshInput = {}) {
    const { logger, clock, random, env: envIn, telemetry, fallbacks, ...config } = input;
    this.logger = logger ?? silentLogger;
    const env = envIn ?? process.env;
    this.config = loadConfig(config, env);
    this.#clock = clock ?? (() => performance.now());
    this.#closeTimeoutMs = this.config.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT_MS;
    const zone = this.config.zone ?? (env.MESHWORK_ZONE || undefined);
    for (const [name, svc] of Object.entries(this.config.services)) {
      this.#services.set(
        name,
        new ServiceRuntime(name, svc, {
          clock: this.#clock,
          logger: this.logger,
          zone,
          env,
          fallback: fallbacks?.[name],
        }),
      );
    }
    this.#mirrorGate = new MirrorGate();
    const stack = buildStack({
      clock: this.#clock,
      services: this.#services,
      mirrorGate: this.#mirrorGate,
      random,
      telemetry: telemetry !== false,
    });
    this.dispatcher = new MeshDispatcher({
      services: this.#services,
      stack,
      clock: this.#clock,
      unknownServices: this.config.unknownServices ?? 'reject',
      onClose: (destroy) => this.#close(destroy),
    });
    for (const svc of this.#services.values()) svc.start();
  }

  /**
   * WHATWG fetch through the mesh. `http://<service>/path` addresses a configured service.
   * Rejects with the MeshworkError itself (not fetch's generic "fetch failed") when the mesh
   * refuses the request: unknown service, no endpoints, closed...
   */
  fetch = async (input: FetchInput, init?: RequestInit): Promise<Response> => {
    if (this.#closing) throw new MeshClosedError();
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (!this.dispatcher.isKnown(url) && this.config.unknownServices !== 'passthrough') {
      const host = this.dispatcher.target(url)?.host ?? url;
      throw new UnknownServiceError(host, [...this.#services.keys()]);
    }
    const request = isForeignRequest(input) ? toUndiciRequest(input) : (input as string | URL);
    try {
      return (await undiciFetch(request as never, {
        ...(init as object),
        dispatcher: this.dispatcher,
      })) as unknown as Response;
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (isMeshworkError(cause)) throw cause;
      throw err;
    }
  };

  /** The live state of every service: endpoints, load, ejections, discovery... (see docs/telemetry.md). */
  snapshot(): MeshSnapshot {
    const now = this.#clock();
    const services: Record<string, ServiceSnapshot> = {};
    for (const [name, svc] of this.#services) services[name] = serviceSnapshot(svc, now);
    return {
      zone: this.config.zone,
      closed: this.#closing !== undefined,
      takenAt: new Date().toISOString(),
      services,
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
      const timeout = destroy ? 0 : this.#closeTimeoutMs;
      await this.dispatcher.shutdownOwn(destroy);
      await Promise.all([...this.#services.values()].map((s) => s.close(timeout)));
    })();
    return this.#closing;
  }
}

/** Builds a mesh from config (validated completely, synchronously). Throws MeshworkConfigError. */
export function createMesh(config?: CreateMeshInput): Mesh {
  return new Mesh(config);
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
