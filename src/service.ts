import { ENDPOINT_DEFAULTS } from './balancer/endpoint.ts';
import { EndpointSet, type SubsetSpec } from './balancer/endpoint-set.ts';
import { createBalancer } from './balancer/index.ts';
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
import type { PathOptions } from './http/path.ts';
import { alpnProtocols } from './http/protocol.ts';
import type { ServiceView } from './pipeline.ts';
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
  /** The mesh's xDS client, for `discovery.xds`. */
  xds?: DiscoveryContext['xds'];
}

/** Everything the pipeline knows about one configured service, built once at createMesh. */
export class ServiceRuntime implements ServiceView {
  readonly name: string;
  readonly config: ServiceConfig;
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

  constructor(name: string, config: ServiceConfig, opts: ServiceRuntimeOptions) {
    this.name = name;
    this.config = config;
    // The first request waits this long for discovery's first resolution; a removed endpoint's
    // in-flight requests get drainTimeout before its pool is destroyed (docs/discovery.md).
    this.initialTimeoutMs = config.discovery.initialTimeout ?? DISCOVERY_DEFAULTS.initialTimeout;
    this.logger = opts.logger;
    const policy = config.trafficPolicy;
    this.router = compileRouter(config.http, opts.paths);
    // Each DestinationRule subset gets its own pick group and balancer; the subset's policy
    // replaces the service's field by field (Istio's merge). Endpoint pools are shared by all
    // groups, so connection-pool settings come from the service-level policy.
    const subsets: SubsetSpec[] = (config.subsets ?? []).map((s) => {
      const merged = mergeSubsetPolicy(policy, s.trafficPolicy as typeof policy);
      return {
        name: s.name,
        labels: s.labels ?? {},
        balancer: createBalancer(merged?.loadBalancer, { zone: opts.zone }),
        hash: merged?.loadBalancer?.consistentHash,
      };
    });
    this.retry = new ServiceRetry(config, opts.clock, (budget) =>
      opts.logger.warn({ service: name, budget }, 'retry budget exhausted: retries are refused'),
    );
    const od = outlierSettings(policy?.outlierDetection);
    this.outlier = od ? new OutlierDetector(od, opts.clock()) : undefined;
    // Ejections go to telemetry (metrics, channel, span event, and the logger's warning).
    if (this.outlier)
      this.outlier.onEject = (ep, forMs, reason) => {
        this.endpoints.availabilityChanged();
        this.telemetry.ejection({ endpoint: ep.address, reason, durationMs: forMs });
      };
    const cb = policy?.circuitBreaker;
    this.breaker =
      cb && cb.enabled !== false
        ? new ServiceBreaker(cb, (state) => this.telemetry.circuitBreaker({ state }))
        : undefined;
    this.fallback = opts.fallback;
    this.limits = new ServiceLimits(policy?.connectionPool);
    this.tls = createClientTls(name, config, opts);
    this.discovery = createDiscovery(config.discovery, { service: name, env: opts.env, xds: opts.xds });
    this.endpoints = new EndpointSet({
      service: name,
      provider: this.discovery.kind,
      balancer: createBalancer(policy?.loadBalancer, { zone: opts.zone }),
      hash: policy?.loadBalancer?.consistentHash,
      subsets,
      connectionPool: policy?.connectionPool,
      connect: this.tls?.connect,
      clock: opts.clock,
      logger: opts.logger,
      drainTimeoutMs: config.discovery.drainTimeout ?? DISCOVERY_DEFAULTS.drainTimeout,
    });
    this.telemetry = new ServiceTelemetry(name, this.endpoints, opts.logger, opts.clock);
  }

  /** Active health checks between discovery and the endpoint set, when configured. */
  #health: HealthCheckingSink | undefined;

  start(): void {
    // provider → (health checks) → telemetry → endpoint set
    const routingOnly = this.router.size > 0 && this.config.discovery.static?.length === 0;
    const sink = this.telemetry.discoverySink(this.endpoints, routingOnly);
    const hc = this.config.discovery.healthCheck;
    this.#health = hc ? new HealthCheckingSink(sink, hc) : undefined;
    this.discovery.start(this.#health ?? sink);
  }

  /** The provider's own status when it keeps one (dns, consul, etcd, file), else the endpoint set's. */
  discoveryStatus(): DiscoveryStatus {
    return this.discovery.status?.() ?? { ...this.endpoints.status };
  }

  async close(timeoutMs: number): Promise<void> {
    this.telemetry.close();
    this.breaker?.shutdown();
    await this.discovery.close().catch(() => {});
    await this.#health?.close();
    await this.endpoints.close(timeoutMs);
    this.tls?.close();
  }
}

function createClientTls(
  name: string,
  config: ServiceConfig,
  opts: ServiceRuntimeOptions,
): ClientTls | undefined {
  const policy = config.trafficPolicy;
  const tls = policy?.tls;
  if (!tls || tls.mode === 'DISABLE') return undefined;
  const path = `services.${name}.trafficPolicy.tls`;
  if (tls.mode === 'ISTIO_MUTUAL' && !opts.identity) {
    throw new MeshworkConfigError([
      { path: `${path}.mode`, message: '"ISTIO_MUTUAL" needs the mesh-wide `identity { cert, key, ca }`' },
    ]);
  }
  return new ClientTls({
    service: name,
    tls,
    path,
    identity: opts.identity,
    connectTimeoutMs: policy?.connectionPool?.tcp?.connectTimeout ?? ENDPOINT_DEFAULTS.connectTimeoutMs,
    logger: opts.logger,
    alpn: alpnProtocols(policy),
  });
}
