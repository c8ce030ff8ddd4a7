import type { Clock } from '../clock.ts';
import type { ConnectionPoolConfig } from '../config/schema.ts';
import type { DiscoveryChange, DiscoverySink, DiscoveryStatus } from '../discovery/types.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Connector } from '../tls/client.ts';
import { Endpoint } from './endpoint.ts';
import type { ConsistentHashConfig } from './schema.ts';
import type { Balancer } from './types.ts';

/** A named subset of a service (Istio DestinationRule `subsets`), with its own balancer. */
export interface SubsetSpec {
  name: string;
  labels: Record<string, string>;
  balancer: Balancer;
  /** `loadBalancer.consistentHash` of this subset's policy, when it hashes. */
  hash?: ConsistentHashConfig | undefined;
  connectionPool?: ConnectionPoolConfig | undefined;
}

/** The pools of one cluster (Istio's (port, subset)): connection-pool settings and TLS connector. */
export interface ClusterOptions {
  connectionPool?: ConnectionPoolConfig | undefined;
  connect?: Record<string, unknown> | Connector | undefined;
}

/** The endpoints one pick chooses among, and the balancer that chooses. */
export interface PickGroup {
  readonly name: string | undefined;
  endpoints: readonly Endpoint[];
  readonly balancer: Balancer;
  readonly labels: Record<string, string> | undefined;
  readonly hash: ConsistentHashConfig | undefined;
  /** `destination.port.number`: only endpoints on this port (made on first use). */
  readonly port?: number | undefined;
}

export interface EndpointSetOptions {
  service: string;
  provider: string;
  balancer: Balancer;
  hash?: ConsistentHashConfig | undefined;
  subsets?: readonly SubsetSpec[];
  connectionPool?: ConnectionPoolConfig | undefined;
  /** undici connect options or connector (TLS, src/tls/client.ts), shared by every endpoint. */
  connect?: Record<string, unknown> | Connector | undefined;
  clock: Clock;
  logger: Logger;
  /** How long a removed endpoint may finish its in-flight requests before its pool is destroyed. */
  drainTimeoutMs: number;
  /** Period of the idle-pool sweep (default IDLE_POOL_SWEEP_MS; tests shorten it). */
  idlePoolSweepMs?: number | undefined;
  /**
   * A new balancer for a subset (undefined: the whole service), for the groups of one port that
   * a route's `destination.port` asks for. Default: the subset's own balancer is shared.
   */
  balancerFor?: ((subset: string | undefined, port?: number) => Balancer) | undefined;
  /**
   * The pools of the cluster (port, subset) when they differ from the service's endpoints' own
   * (`portLevelSettings`, a subset's connectionPool or tls). For `subset` undefined: the options
   * of the service's endpoints on that port; for a subset: undefined when it shares them.
   */
  clusterOptions?: ((port: number, subset: string | undefined) => ClusterOptions | undefined) | undefined;
  /**
   * The endpoints are a gateway's (`services.<name>.gateway`): a route's `destination.port` and a
   * subset name the remote service's port and subset (in the SNI), never the gateway's, so every
   * group holds every endpoint; with AUTO_PASSTHROUGH, each endpoint keeps a pool per SNI.
   */
  gateway?: { poolPerServerName: boolean } | undefined;
}

/**
 * The live endpoints of one service. Discovery pushes changes in (it is the DiscoverySink);
 * the balancer layer reads pick groups out. A removed endpoint drains: no new requests,
 * in-flight ones finish, and its pool closes (destroyed after the drain timeout at the latest).
 */
export class EndpointSet implements DiscoverySink {
  readonly #opts: EndpointSetOptions;
  readonly #byAddress = new Map<string, Endpoint>();
  readonly #draining = new Set<Promise<void>>();
  /** Removed endpoints still finishing their in-flight requests (shown in the snapshot). */
  readonly #drainingEps = new Set<Endpoint>();
  #groups: PickGroup[] = [];
  #bySubset = new Map<string, PickGroup>();
  /** Subsets a live update removed, still found by requests that started before it (`regroup`). */
  readonly #retired = new Map<string, PickGroup>();
  /**
   * Subsets whose cluster has its own pools (its connectionPool or tls differs from the
   * service's): their own Endpoint for each address, as Envoy has a connection pool per cluster.
   */
  readonly #ownBySubset = new Map<string, Map<string, Endpoint>>();
  /** Groups of one port, by subset (`undefined` = the whole service), then port. */
  readonly #byPort = new Map<string | undefined, Map<number, PickGroup>>();
  all!: PickGroup;
  #ready = false;
  #readyWaiters: (() => void)[] = [];
  #closed = false;
  readonly status: DiscoveryStatus;
  /** Lets idle endpoints' pools go (an endpoint with no request for a whole period). */
  readonly #sweep: NodeJS.Timeout;

  constructor(opts: EndpointSetOptions) {
    this.#opts = opts;
    this.#group(opts);
    this.status = { provider: opts.provider, state: 'starting', updates: 0, errors: 0, skipped: 0 };
    this.#sweep = setInterval(() => this.releaseIdlePools(), opts.idlePoolSweepMs ?? IDLE_POOL_SWEEP_MS);
    this.#sweep.unref();
  }

  get isReady(): boolean {
    return this.#ready;
  }

  /** Number of live (not draining) endpoints. */
  get size(): number {
    return this.#byAddress.size;
  }

  /** True while an endpoint of this address is live or still draining. */
  has(address: string): boolean {
    if (this.#byAddress.has(address)) return true;
    for (const ep of this.#drainingEps) if (ep.address === address) return true;
    return false;
  }

  /** Every endpoint, draining ones included (for the snapshot). */
  *endpoints(): IterableIterator<Endpoint> {
    yield* this.#byAddress.values();
    yield* this.#drainingEps;
  }

  /**
   * The pick group of a subset (undefined: every endpoint), narrowed to the endpoints on `port`
   * when one is given (a route's `destination.port`). Port groups are made on first use; there
   * are at most as many as the config names (subset, port) pairs.
   */
  group(subset: string | undefined, port?: number): PickGroup | undefined {
    const base = subset === undefined ? this.all : (this.#bySubset.get(subset) ?? this.#retired.get(subset));
    if (port === undefined || base === undefined || this.#opts.gateway !== undefined) return base;
    let ports = this.#byPort.get(subset);
    if (ports === undefined) {
      ports = new Map();
      this.#byPort.set(subset, ports);
    }
    let g = ports.get(port);
    if (g === undefined) {
      g = {
        name: base.name,
        endpoints: [],
        balancer: this.#opts.balancerFor?.(subset, port) ?? base.balancer,
        labels: base.labels,
        hash: base.hash,
        port,
      };
      ports.set(port, g);
      this.#groups.push(g);
      this.#fill(g, [...this.#byAddress.values()]);
    }
    return g;
  }

  /**
   * A live config update: new pick groups (subsets, their labels, balancers, hashing) over the
   * same endpoints, whose pools, load estimates and ejections stay. A balancer object passed again
   * keeps what it learnt. A subset the update removes stays findable for the requests that chose
   * it before the update (their retries), for the drain timeout, as a removed endpoint drains.
   */
  regroup(layout: Pick<EndpointSetOptions, 'balancer' | 'hash' | 'subsets' | 'drainTimeoutMs'>): void {
    if (this.#closed) return;
    const before = this.#bySubset;
    this.#opts.drainTimeoutMs = layout.drainTimeoutMs;
    this.#group(layout);
    for (const [name, g] of before) {
      if (this.#bySubset.has(name)) continue;
      this.#retired.set(name, g);
      const timer = setTimeout(() => {
        if (this.#retired.get(name) === g) this.#retired.delete(name);
      }, layout.drainTimeoutMs);
      timer.unref();
    }
    for (const name of this.#bySubset.keys()) this.#retired.delete(name);
    this.#rebuild();
  }

  #group(layout: Pick<EndpointSetOptions, 'balancer' | 'hash' | 'subsets'>): void {
    this.all = {
      name: undefined,
      endpoints: [],
      balancer: layout.balancer,
      labels: undefined,
      hash: layout.hash,
    };
    const groups = [this.all];
    const bySubset = new Map<string, PickGroup>();
    for (const s of layout.subsets ?? []) {
      const g: PickGroup = {
        name: s.name,
        endpoints: [],
        balancer: s.balancer,
        labels: s.labels,
        hash: s.hash,
      };
      groups.push(g);
      bySubset.set(s.name, g);
    }
    this.#groups = groups;
    this.#bySubset = bySubset;
    // Port groups are made again on first use, from the new subsets.
    this.#byPort.clear();
  }

  apply(changes: readonly DiscoveryChange[]): void {
    if (this.#closed || changes.length === 0) return;
    const now = this.#opts.clock();
    for (const change of changes) {
      if (change.type === 'insert') {
        const existing = this.#byAddress.get(change.endpoint.address);
        if (existing) existing.update(change.endpoint);
        else {
          const cluster = this.#opts.clusterOptions?.(change.endpoint.port, undefined);
          const ep = new Endpoint(change.endpoint, {
            connectionPool: cluster ? cluster.connectionPool : this.#opts.connectionPool,
            connect: cluster ? cluster.connect : this.#opts.connect,
            now,
            poolPerServerName: this.#opts.gateway?.poolPerServerName,
          });
          this.#byAddress.set(ep.address, ep);
        }
      } else if (change.type === 'health') {
        const ep = this.#byAddress.get(change.address);
        if (ep) ep.healthy = change.healthy;
      } else {
        const ep = this.#byAddress.get(change.address);
        if (ep) {
          this.#byAddress.delete(change.address);
          this.#drain(ep);
        }
      }
    }
    this.status.updates++;
    this.status.lastUpdateAt = new Date().toISOString();
    this.#rebuild();
  }

  ready(): void {
    if (this.#ready) return;
    this.#ready = true;
    if (this.status.state === 'starting') this.status.state = 'ready';
    const waiters = this.#readyWaiters;
    this.#readyWaiters = [];
    for (const w of waiters) w();
  }

  error(err: Error): void {
    this.status.errors++;
    this.status.lastError = err.message;
    if (this.status.state !== 'closed') this.status.state = 'degraded';
    this.#opts.logger.warn(
      { service: this.#opts.service, provider: this.#opts.provider, err: err.message },
      'discovery error: keeping the last known endpoints',
    );
  }

  skipped(reason: string, record: unknown): void {
    this.status.skipped++;
    this.#opts.logger.warn(
      { service: this.#opts.service, provider: this.#opts.provider, reason, record },
      'discovery record skipped',
    );
  }

  /** Resolves true once discovery is ready, false when `timeoutMs` passes first. */
  whenReady(timeoutMs: number): Promise<boolean> {
    if (this.#ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#readyWaiters = this.#readyWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#readyWaiters.push(done);
    });
  }

  /** Tells every balancer that availability changed (an ejection, a health flip): same lists. */
  availabilityChanged(): void {
    for (const g of this.#groups) g.balancer.update?.(g.endpoints);
    for (const g of this.#retired.values()) g.balancer.update?.(g.endpoints);
  }

  /** Lets go of the pools of endpoints that sent nothing since the last sweep. Returns how many. */
  releaseIdlePools(): number {
    let released = 0;
    for (const ep of this.#byAddress.values()) if (ep.releaseIfIdle()) released++;
    return released;
  }

  #rebuild(): void {
    const live = [...this.#byAddress.values()];
    for (const g of this.#retired.size > 0 ? [...this.#groups, ...this.#retired.values()] : this.#groups)
      this.#fill(g, live);
  }

  /** A group's endpoints from the live ones: its labels and port, its cluster's own pools. */
  #fill(g: PickGroup, live: readonly Endpoint[]): void {
    const labels = g.labels;
    const port = g.port;
    const chosen =
      labels === undefined && port === undefined
        ? live
        : live.filter(
            (ep) => (port === undefined || ep.port === port) && (!labels || matchesLabels(ep.labels, labels)),
          );
    const clusterOptions = this.#opts.clusterOptions;
    g.endpoints =
      g.name === undefined || clusterOptions === undefined ? chosen : this.#own(g, chosen, clusterOptions);
    g.balancer.update?.(g.endpoints);
  }

  /**
   * The subset's endpoints, each replaced by the cluster's own Endpoint (own pool, own ejection
   * state) when the cluster's pools differ from the service's. Health, labels and weight follow
   * discovery; an own endpoint no longer chosen drains like a removed one.
   */
  #own(
    g: PickGroup,
    chosen: readonly Endpoint[],
    clusterOptions: NonNullable<EndpointSetOptions['clusterOptions']>,
  ): Endpoint[] {
    const subset = g.name as string;
    let own = this.#ownBySubset.get(subset);
    const keep = new Set<string>();
    const out = chosen.map((ep) => {
      const options = clusterOptions(ep.port, subset);
      if (options === undefined) return ep;
      if (own === undefined) {
        own = new Map();
        this.#ownBySubset.set(subset, own);
      }
      const spec = {
        address: ep.address,
        host: ep.host,
        port: ep.port,
        labels: ep.labels,
        weight: ep.weight,
        zone: ep.zone,
      };
      let mine = own.get(ep.address);
      if (mine === undefined) {
        mine = new Endpoint(spec, {
          ...options,
          now: this.#opts.clock(),
          poolPerServerName: this.#opts.gateway?.poolPerServerName,
        });
        own.set(ep.address, mine);
      } else mine.update(spec);
      mine.healthy = ep.healthy;
      keep.add(ep.address);
      return mine;
    });
    // The subset's own group (every port) decides which of its own endpoints are gone.
    if (own !== undefined && g.port === undefined) {
      for (const [address, mine] of own) {
        if (keep.has(address)) continue;
        own.delete(address);
        this.#drain(mine);
      }
    }
    return out;
  }

  #drain(ep: Endpoint): void {
    ep.draining = true;
    this.#drainingEps.add(ep);
    const timeout = this.#opts.drainTimeoutMs;
    const p = ep.closePool(timeout).finally(() => {
      this.#draining.delete(p);
      this.#drainingEps.delete(ep);
    });
    this.#draining.add(p);
  }

  /** Closes every pool: waits up to `timeoutMs` for in-flight requests, then destroys. */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    this.status.state = 'closed';
    for (const w of this.#readyWaiters) w();
    this.#readyWaiters = [];
    const all = [...this.#byAddress.values()];
    for (const own of this.#ownBySubset.values()) all.push(...own.values());
    this.#ownBySubset.clear();
    this.#byAddress.clear();
    for (const g of this.#groups) g.endpoints = [];
    for (const g of this.#retired.values()) g.endpoints = [];
    this.#retired.clear();
    clearInterval(this.#sweep);
    await Promise.all([...all.map((ep) => ep.closePool(timeoutMs)), ...this.#draining]);
  }
}

/**
 * How often idle pools are let go: an endpoint that sent no request for a whole period (and has
 * none in flight) gives its pool back; its connections closed long before (keep-alive 4 s).
 */
export const IDLE_POOL_SWEEP_MS = 60_000;

export function matchesLabels(have: Record<string, string>, want: Record<string, string>): boolean {
  for (const k in want) if (have[k] !== want[k]) return false;
  return true;
}
