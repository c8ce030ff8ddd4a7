import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import type { ConnectionPoolConfig } from '../config/schema.ts';
import type { EndpointSpec } from '../discovery/types.ts';
import type { MeshDispatchOptions } from '../http/dispatch-options.ts';
import { poolProtocolOptions } from '../http/protocol.ts';
import { serverNameFor } from '../http/server-name.ts';
import type { Connector } from '../tls/client.ts';
import { FailureRate } from './failure-rate.ts';
import {
  allocateCell,
  DRAINING,
  EFFECTIVE_WEIGHT,
  EJECTED_UNTIL,
  FLAGS,
  HEALTHY,
  INFLIGHT,
  type LoadCell,
  tables,
} from './load-table.ts';
import { PeakEwma } from './peak-ewma.ts';

/** Defaults, with their sources (see docs/configuration.md). */
export const ENDPOINT_DEFAULTS = {
  /** linkerd2-proxy's default RTT for a new endpoint. */
  defaultRttMs: 30,
  /** Finagle / linkerd2-proxy decay of 10 s, used here as the half-life. */
  ewmaHalfLifeMs: 10_000,
  /** Envoy's max_connections default. */
  maxConnections: 1024,
  /** Istio tcp.connectTimeout default. */
  connectTimeoutMs: 10_000,
  /** undici's keepAliveTimeout default; undici also honours the server's keep-alive hint. */
  idleTimeoutMs: 4_000,
} as const;

export interface EndpointOptions {
  connectionPool?: ConnectionPoolConfig | undefined;
  now: number;
  /** undici connect options, or a connector function (TLS, src/tls/client.ts). */
  connect?: Record<string, unknown> | Connector | undefined;
  /**
   * One pool per TLS server name (a gateway in AUTO_PASSTHROUGH: each SNI is a route to other
   * workloads, so connections are never shared across names; undici would otherwise close a
   * connection to reopen it with the next request's name).
   */
  poolPerServerName?: boolean | undefined;
}

/**
 * One upstream address with its per-endpoint state: load (in-flight count and peak-EWMA RTT),
 * health, ejection, drain, and its own undici Pool. The balancer reads the state; the
 * endpoint layers (src/stack.ts) update it.
 */
export class Endpoint {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  labels: Record<string, string>;
  zone: string | undefined;
  /**
   * The endpoint's row of the load table (load-table.ts): in-flight count, health, ejection,
   * drain, effective weight and the estimates' state, where a balancer reads them without
   * touching this object.
   */
  readonly load: LoadCell;
  readonly #row: number;
  #weight = 1;
  #weightFactor = 1;
  /** Lifetime counters, kept by the load layer: attempts sent here (retries and hedges included). */
  attempts = 0;
  /** Attempts answered with a 5xx status. */
  responses5xx = 0;
  /**
   * Attempts that failed without a complete answer: refused, reset, per-try timeout. Attempts
   * cancelled on purpose (a losing hedge, a retried answer, the caller's abort) are not counted.
   */
  errors = 0;
  readonly ewma: PeakEwma;
  /** Recent share of failed attempts (failure-aware PEAK_EWMA). */
  readonly failures: FailureRate;
  /** When discovery added it (monotonic ms), for slow start. */
  readonly addedAt: number;
  /** The HTTP version spoken to this endpoint, for `network.protocol.version` on attempt spans. */
  httpVersion: '1.1' | '2' = '1.1';

  /** The endpoint's own undici Pool: made on the first request, let go when idle (`releaseIfIdle`). */
  #pool: Pool | undefined;
  /** With `poolPerServerName`: the pools by TLS server name (the default pool is the '' one). */
  readonly #byName: Map<string, Pool> | undefined;
  /** Shared by every endpoint of the cluster (one object, not one per endpoint). */
  readonly #connectionPool: ConnectionPoolConfig | undefined;
  readonly #connect: EndpointOptions['connect'];
  /** `attempts` at the last idle sweep: unchanged since then means no request in between. */
  #sweptAttempts = -1;
  /** Its pool's connection limit (connectionPool.tcp.maxConnections of its cluster). */
  readonly maxConnections: number;
  /** Its cluster's connectionPool.http.http1MaxPendingRequests, when set. */
  readonly maxPending: number | undefined;

  constructor(spec: EndpointSpec, options: EndpointOptions) {
    this.address = spec.address;
    this.host = spec.host;
    this.port = spec.port;
    this.labels = spec.labels;
    this.zone = spec.zone;
    this.load = allocateCell();
    this.#row = this.load.o;
    tables.hot[this.#row + FLAGS] = HEALTHY;
    this.weight = spec.weight;
    this.addedAt = options.now;
    this.ewma = new PeakEwma(
      ENDPOINT_DEFAULTS.defaultRttMs,
      ENDPOINT_DEFAULTS.ewmaHalfLifeMs,
      options.now,
      this.load,
    );
    this.failures = new FailureRate(ENDPOINT_DEFAULTS.ewmaHalfLifeMs, options.now, this.load);
    this.#connectionPool = options.connectionPool;
    this.#connect = options.connect;
    this.maxConnections = options.connectionPool?.tcp?.maxConnections ?? ENDPOINT_DEFAULTS.maxConnections;
    this.maxPending = options.connectionPool?.http?.http1MaxPendingRequests;
    this.#byName = options.poolPerServerName ? new Map() : undefined;
  }

  /** Requests dispatched to this endpoint and not finished yet. */
  get inflight(): number {
    return tables.hot[this.#row + INFLIGHT] as number;
  }
  set inflight(n: number) {
    tables.hot[this.#row + INFLIGHT] = n;
  }

  /** Active health checks / registry health. */
  get healthy(): boolean {
    return ((tables.hot[this.#row + FLAGS] as number) & HEALTHY) !== 0;
  }
  set healthy(v: boolean) {
    this.#flag(HEALTHY, v);
  }

  /** Removed by discovery: takes no new requests, lets in-flight ones finish. */
  get draining(): boolean {
    return ((tables.hot[this.#row + FLAGS] as number) & DRAINING) !== 0;
  }
  set draining(v: boolean) {
    this.#flag(DRAINING, v);
  }

  #flag(bit: number, on: boolean): void {
    const i = this.#row + FLAGS;
    tables.hot[i] = on ? (tables.hot[i] as number) | bit : (tables.hot[i] as number) & ~bit;
  }

  /** Outlier detection: ejected until this monotonic time (ms). 0 = not ejected. */
  get ejectedUntil(): number {
    return tables.hot[this.#row + EJECTED_UNTIL] as number;
  }
  set ejectedUntil(ms: number) {
    tables.hot[this.#row + EJECTED_UNTIL] = ms;
  }

  /** The weight discovery gave it. */
  get weight(): number {
    return this.#weight;
  }
  set weight(w: number) {
    this.#weight = w;
    tables.hot[this.#row + EFFECTIVE_WEIGHT] = w * this.#weightFactor;
  }

  /** Multiplier on the weight applied by slow start (0 < factor <= 1). */
  get weightFactor(): number {
    return this.#weightFactor;
  }
  set weightFactor(f: number) {
    this.#weightFactor = f;
    tables.hot[this.#row + EFFECTIVE_WEIGHT] = this.#weight * f;
  }

  /**
   * The endpoint's pool, made now if it has none. A fleet-sized service (thousands of endpoints)
   * pays for a pool only where requests go: an undici Pool is most of an endpoint's memory.
   */
  get pool(): Pool {
    return this.#pool ?? this.#open();
  }

  /** True while the endpoint holds a pool (for the snapshot and tests). */
  get hasPool(): boolean {
    return this.#pool !== undefined || (this.#byName?.size ?? 0) > 0;
  }

  /** Every pool it holds (several only with `poolPerServerName`). */
  #allPools(): Pool[] {
    const out = this.#pool ? [this.#pool] : [];
    if (this.#byName) out.push(...this.#byName.values());
    return out;
  }

  #open(): Pool {
    const pool = this.#newPool();
    this.#pool = pool;
    return pool;
  }

  #newPool(): Pool {
    const cp = this.#connectionPool;
    const secure = this.#connect !== undefined;
    const hostForUrl = this.host.includes(':') ? `[${this.host}]` : this.host;
    const pool = new Pool(`${secure ? 'https' : 'http'}://${hostForUrl}:${this.port}`, {
      connections: this.maxConnections,
      connectTimeout: cp?.tcp?.connectTimeout ?? ENDPOINT_DEFAULTS.connectTimeoutMs,
      keepAliveTimeout: cp?.http?.idleTimeout ?? ENDPOINT_DEFAULTS.idleTimeoutMs,
      maxRequestsPerClient: cp?.http?.maxRequestsPerConnection || undefined,
      // connectionPool.tcp.maxConnectionDuration: an older connection is replaced when next picked.
      clientTtl: cp?.tcp?.maxConnectionDuration ?? null,
      // HTTP/1.1, or HTTP/2 (h2c by prior knowledge, or ALPN h2 in the TLS connector).
      ...poolProtocolOptions(cp, this.#connect),
      ...(this.#connect
        ? { connect: this.#connect }
        : cp?.tcp?.tcpKeepalive
          ? { connect: { keepAlive: true, keepAliveInitialDelay: cp.tcp.tcpKeepalive.time } }
          : {}),
    } as Pool.Options);
    return pool;
  }

  /**
   * Lets go of the pool when no request went out since the previous sweep and none is in flight
   * (its connections have long gone idle by then); the next request makes a new one. Called
   * periodically by the endpoint set. Returns true when it let go.
   */
  releaseIfIdle(): boolean {
    const pools = this.#allPools();
    const idle = this.attempts === this.#sweptAttempts && this.inflight === 0;
    this.#sweptAttempts = this.attempts;
    if (pools.length === 0 || !idle) return false;
    this.#pool = undefined;
    this.#byName?.clear();
    for (const pool of pools) pool.close().catch(() => {});
    return true;
  }

  /**
   * Closes the pool (if it has one): waits up to `timeoutMs` for in-flight requests, then
   * destroys what is left.
   */
  async closePool(timeoutMs: number): Promise<void> {
    const pools = this.#allPools();
    this.#byName?.clear();
    await Promise.all(pools.map((p) => closeBounded(p, timeoutMs)));
  }

  /** Applies an update from discovery (same address, new labels/weight/zone). */
  update(spec: EndpointSpec): void {
    this.labels = spec.labels;
    this.weight = spec.weight;
    this.zone = spec.zone;
    this.draining = false;
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now;
  }

  /** Can take a new request: healthy, not ejected, not draining. */
  isAvailable(now: number): boolean {
    const o = this.#row;
    return (
      ((tables.hot[o + FLAGS] as number) & (HEALTHY | DRAINING)) === HEALTHY &&
      (tables.hot[o + EJECTED_UNTIL] as number) <= now
    );
  }

  effectiveWeight(_now: number): number {
    return tables.hot[this.#row + EFFECTIVE_WEIGHT] as number;
  }

  /**
   * The innermost dispatch: the endpoint's own pool. The TLS server name is derived from the
   * final Host header (after routing's rewrites) through a small cache, which spares undici
   * deriving it again on every request (src/http/server-name.ts).
   */
  dispatch(opts: MeshDispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (opts.servername == null) {
      const host = opts.headers.host;
      if (typeof host === 'string') {
        const name = serverNameFor(host);
        if (name !== '') opts.servername = name;
      }
    }
    const byName = this.#byName;
    if (byName !== undefined) {
      const name = opts.servername ?? '';
      let pool = byName.get(name);
      if (pool === undefined) {
        pool = this.#newPool();
        byName.set(name, pool);
      }
      return pool.dispatch(opts, handler);
    }
    return (this.#pool ?? this.#open()).dispatch(opts, handler);
  }
}

/** Closes a pool: waits up to `timeoutMs` for its in-flight requests, then destroys what is left. */
async function closeBounded(pool: Pool, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    timer.unref();
  });
  const closed = pool.close().then(
    () => 'closed' as const,
    () => 'closed' as const,
  );
  const outcome = await Promise.race([closed, bound]);
  clearTimeout(timer);
  if (outcome === 'timeout') await pool.destroy().catch(() => {});
}
