import { Clusters } from './balancer/clusters.ts';
import { ENDPOINT_DEFAULTS } from './balancer/endpoint.ts';
import { EndpointSet, type SubsetSpec } from './balancer/endpoint-set.ts';
import { createBalancer } from './balancer/index.ts';
import type { ConsistentHashConfig } from './balancer/schema.ts';
import type { Balancer } from './balancer/types.ts';
import { type Fallback, ServiceBreaker } from './breaker/breaker.ts';
import type { Clock } from './clock.ts';
import type { ServiceConfig } from './config/schema.ts';
import { HealthCheckingSink } from './discovery/health-check.ts';
import { createDiscovery, type DiscoveryContext } from './discovery/index.ts';
import { DISCOVERY_DEFAULTS } from './discovery/schema.ts';
import type { DiscoveryProvider, DiscoveryStatus } from './discovery/types.ts';
import { ServiceLimits } from './endpoint/limits.ts';
import { OutlierDetector, outlierSettings } from './endpoint/outlier.ts';
import { MeshworkConfigError } from './errors.ts';
import { terminateTls } from './gateway/config.ts';
import { ServiceGateway } from './gateway/service-gateway.ts';
import type { PathOptions } from './http/path.ts';
import { alpnProtocols } from './http/protocol.ts';
import { configKey } from './live/key.ts';
import type { ServiceView } from './pipeline.ts';
import type { Limiter } from './ratelimit/limiter.ts';
import type { RateLimitRuntime } from './ratelimit/runtime.ts';
import { ServiceRetry } from './retry/policy.ts';
import { compileRouter, type Router } from './routing/router.ts';
import { mergeSubsetPolicy } from './routing/subset.ts';
import type { Logger } from './telemetry/logger.ts';
import { ServiceTelemetry } from './telemetry/service-telemetry.ts';
import { ClientTls } from './tls/client.ts';
import type { MeshIdentity } from './tls/identity.ts';

export interface ServiceRuntimeOptions {
  clock: Clock;
  logger: Logger;
  zone: string | undefined;
  env: NodeJS.ProcessEnv;
  /** Answer given when this service's circuit breaker is open (code-only option). */
  fallback?: Fallback | undefined;
  /** The mesh-wide identity, for `tls.mode: ISTIO_MUTUAL`. */
  identity?: MeshIdentity | undefined;
  /** The mesh's `pathNormalization`, applied before route matching. */
  paths?: PathOptions | undefined;
  /** This workload's own labels (the mesh's `labels`), for routes' `match.sourceLabels`. */
  labels?: Readonly<Record<string, string>> | undefined;
  /** The mesh's rate limits, for the service's own `rateLimits` (src/ratelimit). */
  rateLimits?: RateLimitRuntime | undefined;
  /** The mesh's xDS client, for `discovery.xds`. */
  xds?: DiscoveryContext['xds'];
}

/**
 * How a service's endpoints are grouped for picking: the whole set and each DestinationRule
 * subset, each with its balancer. `keys` (group name, '' for the whole set → its settings) lets a
 * later version keep the balancer objects of groups whose settings did not change.
 */
export interface GroupLayout {
  readonly balancer: Balancer;
  readonly hash: ConsistentHashConfig | undefined;
  readonly subsets: readonly SubsetSpec[];
  readonly keys: ReadonlyMap<string, string>;
  /** All of the above as one string: equal keys, nothing to regroup. */
  readonly key: string;
  readonly drainTimeoutMs: number;
}

/**
 * What a service's core is built from. When it changes (another discovery source, health checks,
 * TLS, pool settings) a live update gives the service a new core; otherwise the core is kept.
 */
export function coreKey(config: ServiceConfig): string {
  const { initialTimeout: _i, drainTimeout: _d, ...source } = config.discovery;
  const policy = config.trafficPolicy;
  const cp = policy?.connectionPool;
  // The request limits are accounting, reconfigured in place; the rest shapes each endpoint's pool.
  const { http2MaxRequests: _m, http1MaxPendingRequests: _p, ...poolHttp } = cp?.http ?? {};
  // Istio's clusters: per-port settings and a subset's own pools or TLS shape pools as well.
  const clusters = {
    ports: policy?.portLevelSettings,
    subsets: (config.subsets ?? []).map((s) => [s.name, s.labels, s.trafficPolicy]),
  };
  return configKey({
    source,
    tls: policy?.tls,
    pool: { ...cp, http: poolHttp },
    clusters,
    gateway: config.gateway,
  });
}

/**
 * The long-lived part of a service: its discovery source, endpoints (pools, load estimates,
 * ejections, health), client TLS, request accounting and telemetry. A live update that leaves
 * `coreKey` unchanged keeps it; every version of the service's config points at it.
 */
export class ServiceCore {
  readonly name: string;
  readonly key: string;
  readonly discovery: DiscoveryProvider;
  readonly endpoints: EndpointSet;
  readonly telemetry: ServiceTelemetry;
  readonly limits: ServiceLimits;
  readonly tls: ClientTls | undefined;
  /** The service's clusters (port, subset): balancers, pools and TLS of each. */
  readonly clusters: Clusters;
  /** Requests in the retry layer now, over every config version using this core. */
  readonly requests = { active: 0 };
  /** The grouping applied to `endpoints` now. */
  layout: GroupLayout;
  readonly #healthCheck: ServiceConfig['discovery']['healthCheck'];
  readonly #routingOnly: boolean;
  #health: HealthCheckingSink | undefined;
  #started = false;
  #discoveryClosed: Promise<void> | undefined;

  constructor(name: string, config: ServiceConfig, opts: ServiceRuntimeOptions, layout: GroupLayout) {
    this.name = name;
    this.key = coreKey(config);
    this.layout = layout;
    const policy = config.trafficPolicy;
    this.#healthCheck = config.discovery.healthCheck;
    // Routes and no endpoints of its own (an xDS listener): no warning for discovery's 0 endpoints.
    this.#routingOnly = (config.http?.length ?? 0) > 0 && config.discovery.static?.length === 0;
    this.limits = new ServiceLimits(policy?.connectionPool);
    this.tls = createClientTls(name, config, opts);
    const clusters = new Clusters({
      service: name,
      config,
      zone: opts.zone,
      labels: opts.labels,
      identity: opts.identity,
      logger: opts.logger,
      serviceTls: this.tls,
    });
    this.clusters = clusters;
    try {
      this.discovery = createDiscovery(config.discovery, { service: name, env: opts.env, xds: opts.xds });
    } catch (err) {
      this.tls?.close();
      clusters.close();
      throw err;
    }
    this.endpoints = new EndpointSet({
      service: name,
      provider: this.discovery.kind,
      balancer: layout.balancer,
      hash: layout.hash,
      subsets: layout.subsets,
      connectionPool: policy?.connectionPool,
      connect: this.tls?.connect,
      clock: opts.clock,
      logger: opts.logger,
      drainTimeoutMs: layout.drainTimeoutMs,
      // Istio's clusters: a route's destination.port gets its own group, balanced as its
      // (port, subset) cluster says; portLevelSettings and a subset's pools and TLS apply to it.
      balancerFor: (subset, port) => clusters.balancer(subset, port),
      clusterOptions: clusters.varies ? (port, subset) => clusters.options(port, subset) : undefined,
      // Behind another mesh's gateway: the endpoints are the gateway's (src/gateway).
      gateway: config.gateway ? { poolPerServerName: config.gateway.mode === 'AUTO_PASSTHROUGH' } : undefined,
    });
    this.telemetry = new ServiceTelemetry(name, this.endpoints, opts.logger, opts.clock);
  }

  /** Starts discovery (once). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    // provider → (health checks) → telemetry → endpoint set
    const sink = this.telemetry.discoverySink(this.endpoints, this.#routingOnly);
    const hc = this.#healthCheck;
    this.#health = hc ? new HealthCheckingSink(sink, hc) : undefined;
    this.discovery.start(this.#health ?? sink);
  }

  /**
   * Makes `version` the live config over this core: its request limits, and its grouping of the
   * endpoints (subsets, balancers), regrouped only when it differs from the applied one.
   */
  activate(version: { readonly layout: GroupLayout; readonly config: ServiceConfig }): void {
    this.limits.reconfigure(version.config.trafficPolicy?.connectionPool);
    if (version.layout.key !== this.layout.key) this.endpoints.regroup(version.layout);
    this.layout = version.layout;
  }

  /** The provider's own status when it keeps one (dns, consul, etcd, file), else the endpoint set's. */
  discoveryStatus(): DiscoveryStatus {
    return this.discovery.status?.() ?? { ...this.endpoints.status };
  }

  /** Stops watching the registry (the service is going away): its endpoints stay as they are. */
  stopDiscovery(): Promise<void> {
    this.#discoveryClosed ??= (async () => {
      await this.discovery.close().catch(() => {});
      await this.#health?.close();
    })();
    return this.#discoveryClosed;
  }

  async close(timeoutMs: number): Promise<void> {
    this.telemetry.close();
    await this.stopDiscovery();
    await this.endpoints.close(timeoutMs);
    this.tls?.close();
    this.clusters.close();
  }
}

/**
 * One version of one configured service: the compiled routes and policies of its config, over its
 * core. A live update builds a new version for a service whose config changed, keeping the core,
 * the retry budget, the breaker and outlier detection whose settings did not change; a request
 * keeps the version it started with to its end. `new ServiceRuntime(name, config, opts)` alone
 * builds a first version with a core of its own.
 */
export class ServiceRuntime implements ServiceView {
  readonly name: string;
  readonly config: ServiceConfig;
  readonly core: ServiceCore;
  readonly endpoints: EndpointSet;
  readonly discovery: DiscoveryProvider;
  readonly initialTimeoutMs: number;
  /** The compiled `http` routes (size 0 when the service has none). */
  readonly router: Router;
  /** The mesh's logger (silent by default). */
  readonly logger: Logger;
  /** Telemetry events of this service: retries, budget, ejections, breaker, discovery. */
  readonly telemetry: ServiceTelemetry;
  /** Retry policy, budget and hedge budget (src/retry). */
  readonly retry: ServiceRetry;
  /** Outlier detection (src/balancer/outlier.ts); undefined when disabled. */
  readonly outlier: OutlierDetector | undefined;
  /** Service-level circuit breaker (src/breaker); undefined unless configured. */
  readonly breaker: ServiceBreaker | undefined;
  readonly fallback: Fallback | undefined;
  /** connectionPool request accounting (src/balancer/limits-layer.ts). */
  readonly limits: ServiceLimits;
  /** Client TLS (trafficPolicy.tls), when its mode is not DISABLE. */
  readonly tls: ClientTls | undefined;
  /** The grouping of endpoints this version wants; applied to the core when it goes live. */
  readonly layout: GroupLayout;
  /** Set by the live-config machinery: what this version was built from, to reuse it as is. */
  sourceKey: string | undefined;
  readonly #outlierKey: string;
  readonly #breakerKey: string;
  /** Outbound rate limits (src/ratelimit/ratelimit-layer.ts); undefined when none. */
  readonly rateLimits: Limiter | undefined;
  /** The other mesh's gateway this service is reached through (src/gateway); undefined for most. */
  readonly gateway: ServiceGateway | undefined;
  /** Gateway context headers this service may receive (`context.propagate`); undefined = all. */
  readonly contextAllowed: ReadonlySet<string> | undefined;

  constructor(
    name: string,
    config: ServiceConfig,
    opts: ServiceRuntimeOptions,
    reuse: { previous?: ServiceRuntime | undefined; core?: ServiceCore | undefined } = {},
  ) {
    this.name = name;
    this.config = config;
    // The first request waits this long for discovery's first resolution; a removed endpoint's
    // in-flight requests get drainTimeout before its pool is destroyed (docs/discovery.md).
    this.initialTimeoutMs = config.discovery.initialTimeout ?? DISCOVERY_DEFAULTS.initialTimeout;
    this.logger = opts.logger;
    const policy = config.trafficPolicy;
    this.router = compileRouter(config.http, opts.paths, opts.labels);
    const core = reuse.core;
    this.layout = groupLayout(config, opts.zone, core?.layout, opts.labels);
    this.core = core ?? new ServiceCore(name, config, opts, this.layout);
    this.endpoints = this.core.endpoints;
    this.discovery = this.core.discovery;
    this.telemetry = this.core.telemetry;
    this.limits = this.core.limits;
    this.tls = this.core.tls;
    // State kept from the previous version: only what belongs to the same core and whose settings
    // did not change (the retry budget belongs to the service, whatever its core).
    const prev = reuse.previous;
    const sameCore = prev !== undefined && prev.core === this.core;
    this.retry = new ServiceRetry(
      config,
      opts.clock,
      (budget) => opts.logger.warn({ service: name, budget }, 'retry budget exhausted: retries are refused'),
      { previous: prev?.retry, counter: this.core.requests },
    );
    // Once per service: a retry that Envoy would make was not made, for safety (docs/resilience.md).
    this.retry.onNonIdempotentSkip = (method, reason) =>
      opts.logger.warn(
        { service: name, method, reason },
        'a non-idempotent request was not retried (it may have reached the server); set retries.retryNonIdempotent: true to retry it as Istio does. Counted in snapshot().services[name].requests.nonIdempotentRetriesSkipped; warned once',
      );
    this.gateway = config.gateway ? new ServiceGateway(name, config.gateway) : undefined;
    this.contextAllowed = contextAllowed(config);
    // Behind a gateway, one address carries the whole remote service: by default only the
    // gateway's own failures (refused, reset, timed out) eject it, not the remote workloads' 5xx.
    const od = outlierSettings(policy?.outlierDetection ?? (config.gateway ? GATEWAY_OUTLIER : undefined));
    this.#outlierKey = configKey(od);
    if (sameCore && prev.#outlierKey === this.#outlierKey) this.outlier = prev.outlier;
    else {
      this.outlier = od ? new OutlierDetector(od, opts.clock()) : undefined;
      // Ejections go to telemetry (metrics, channel, span event, and the logger's warning).
      const c = this.core;
      if (this.outlier)
        this.outlier.onEject = (ep, forMs, reason) => {
          c.endpoints.availabilityChanged();
          c.telemetry.ejection({ endpoint: ep.address, reason, durationMs: forMs });
        };
    }
    const cb = policy?.circuitBreaker;
    const on = cb && cb.enabled !== false ? cb : undefined;
    this.#breakerKey = configKey(on);
    if (sameCore && prev.#breakerKey === this.#breakerKey) this.breaker = prev.breaker;
    else {
      const t = this.core.telemetry;
      this.breaker = on ? new ServiceBreaker(on, (state) => t.circuitBreaker({ state })) : undefined;
    }
    this.fallback = opts.fallback;
    this.sourceKey = undefined;
    this.rateLimits = opts.rateLimits?.forService(name);
  }

  start(): void {
    this.core.start();
  }

  /** The provider's own status when it keeps one (dns, consul, etcd, file), else the endpoint set's. */
  discoveryStatus(): DiscoveryStatus {
    return this.core.discoveryStatus();
  }

  async close(timeoutMs: number): Promise<void> {
    this.breaker?.shutdown();
    await this.core.close(timeoutMs);
  }
}

/**
 * The pick groups a service config asks for. Each DestinationRule subset gets its own group and
 * balancer; the subset's policy replaces the service's field by field (Istio's merge). Endpoint
 * pools are shared by all groups, so connection-pool settings come from the service-level policy.
 * Balancers of `current` (the layout applied to the core now) whose settings are unchanged are
 * kept, with what they learnt.
 */
export function groupLayout(
  config: ServiceConfig,
  zone: string | undefined,
  current: GroupLayout | undefined,
  labels?: Readonly<Record<string, string>> | undefined,
): GroupLayout {
  const policy = config.trafficPolicy;
  const keys = new Map<string, string>();
  const balancerFor = (group: string, lb: Parameters<typeof createBalancer>[0]): Balancer => {
    const key = configKey({ lb, zone, labels });
    keys.set(group, key);
    if (current && current.keys.get(group) === key) {
      if (group === '') return current.balancer;
      const same = current.subsets.find((s) => s.name === group);
      if (same) return same.balancer;
    }
    return createBalancer(lb, { zone, labels });
  };
  const balancer = balancerFor('', policy?.loadBalancer);
  const subsets: SubsetSpec[] = (config.subsets ?? []).map((s) => {
    const merged = mergeSubsetPolicy(policy, s.trafficPolicy as typeof policy);
    return {
      name: s.name,
      // Behind a gateway the subset is chosen by the remote mesh (its name is in the SNI): the
      // gateway's addresses carry no workload labels, so every one of them serves every subset.
      labels: config.gateway ? {} : (s.labels ?? {}),
      balancer: balancerFor(s.name, merged?.loadBalancer),
      hash: merged?.loadBalancer?.consistentHash,
    };
  });
  const drainTimeoutMs = config.discovery.drainTimeout ?? DISCOVERY_DEFAULTS.drainTimeout;
  const key = configKey({
    keys: [...keys],
    labels: subsets.map((s) => [s.name, s.labels]),
    hash: policy?.loadBalancer?.consistentHash,
    drainTimeoutMs,
  });
  return { balancer, hash: policy?.loadBalancer?.consistentHash, subsets, keys, key, drainTimeoutMs };
}

/** Outlier detection of a gateway service when none is configured: local-origin failures only. */
const GATEWAY_OUTLIER = { consecutive5xxErrors: 0, consecutiveLocalOriginFailures: 5 };

/** `context.propagate` as a set of allowed header names; undefined = every gateway context header. */
function contextAllowed(config: ServiceConfig): ReadonlySet<string> | undefined {
  const p = config.context?.propagate ?? !config.gateway;
  if (p === true) return undefined;
  return new Set(p === false ? [] : p);
}

function createClientTls(
  name: string,
  config: ServiceConfig,
  opts: ServiceRuntimeOptions,
): ClientTls | undefined {
  const policy = config.trafficPolicy;
  const gw = config.gateway;
  // TERMINATE: the one TLS hop is to the gateway, verified as the gateway's identity.
  const tls = gw?.mode === 'TERMINATE' ? terminateTls(gw, policy?.tls) : policy?.tls;
  if (!tls || tls.mode === 'DISABLE') return undefined;
  const path =
    gw?.mode === 'TERMINATE' && (gw.tls !== undefined || policy?.tls === undefined)
      ? `services.${name}.gateway.tls`
      : `services.${name}.trafficPolicy.tls`;
  if (tls.mode === 'ISTIO_MUTUAL' && !opts.identity) {
    throw new MeshworkConfigError([
      { path: `${path}.mode`, message: '"ISTIO_MUTUAL" needs the mesh-wide `identity { cert, key, ca }`' },
    ]);
  }
  if (tls.trustDomain !== undefined && !opts.identity) {
    throw new MeshworkConfigError([
      {
        path: `${path}.trustDomain`,
        message: `${JSON.stringify(tls.trustDomain)} needs the mesh-wide \`identity\` (its trustBundles hold the bundle of each trust domain)`,
      },
    ]);
  }
  return new ClientTls({
    service: name,
    tls,
    path,
    identity: opts.identity,
    connectTimeoutMs: policy?.connectionPool?.tcp?.connectTimeout ?? ENDPOINT_DEFAULTS.connectTimeoutMs,
    keepAliveInitialDelayMs: policy?.connectionPool?.tcp?.tcpKeepalive?.time,
    logger: opts.logger,
    alpn: alpnProtocols(policy),
  });
}
