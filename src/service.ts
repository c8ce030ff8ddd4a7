import { EndpointSet, type SubsetSpec } from './balancer/endpoint-set.ts';
import { createBalancer } from './balancer/index.ts';
import { ServiceLimits } from './balancer/limits-layer.ts';
import { OutlierDetector, outlierSettings } from './balancer/outlier.ts';
import type { Clock } from './balancer/types.ts';
import { type Fallback, ServiceBreaker } from './breaker/breaker.ts';
import type { ServiceConfig } from './config/schema.ts';
import { createDiscovery } from './discovery/index.ts';
import type { DiscoveryProvider } from './discovery/types.ts';
import { ServiceRetry } from './retry/policy.ts';
import type { Logger } from './telemetry/logger.ts';

/** Defaults for a service's lifecycle (see docs/configuration.md). */
export const SERVICE_DEFAULTS = {
  /** The first request waits this long for discovery's first resolution (issue: 5 s). */
  initialTimeoutMs: 5_000,
  /** A removed endpoint's in-flight requests get this long before its pool is destroyed. */
  drainTimeoutMs: 30_000,
} as const;

export interface ServiceRuntimeOptions {
  clock: Clock;
  logger: Logger;
  zone: string | undefined;
  env: NodeJS.ProcessEnv;
  /** Answer given when this service's circuit breaker is open (code-only option). */
  fallback?: Fallback | undefined;
}

/** Everything the pipeline knows about one configured service, built once at createMesh. */
export class ServiceRuntime {
  readonly name: string;
  readonly config: ServiceConfig;
  readonly endpoints: EndpointSet;
  readonly discovery: DiscoveryProvider;
  readonly initialTimeoutMs: number;
  /** Retry policy, budget and hedge budget (src/retry). */
  readonly retry: ServiceRetry;
  /** Outlier detection (src/balancer/outlier.ts); undefined when disabled. */
  readonly outlier: OutlierDetector | undefined;
  /** Service-level circuit breaker (src/breaker); undefined unless configured. */
  readonly breaker: ServiceBreaker | undefined;
  readonly fallback: Fallback | undefined;
  /** connectionPool request accounting (src/balancer/limits-layer.ts). */
  readonly limits: ServiceLimits;

  constructor(name: string, config: ServiceConfig, opts: ServiceRuntimeOptions) {
    this.name = name;
    this.config = config;
    this.initialTimeoutMs = SERVICE_DEFAULTS.initialTimeoutMs;
    const policy = config.trafficPolicy;
    const subsets: SubsetSpec[] = [];
    this.retry = new ServiceRetry(config, opts.clock, (budget) =>
      opts.logger.warn({ service: name, budget }, 'retry budget exhausted: retries are refused'),
    );
    const od = outlierSettings(policy?.outlierDetection);
    this.outlier = od ? new OutlierDetector(od, opts.clock()) : undefined;
    if (this.outlier)
      this.outlier.onEject = (ep, forMs, reason) =>
        opts.logger.warn({ service: name, endpoint: ep.address, forMs, reason }, 'endpoint ejected');
    const cb = policy?.circuitBreaker;
    this.breaker = cb && cb.enabled !== false ? new ServiceBreaker(cb) : undefined;
    this.fallback = opts.fallback;
    this.limits = new ServiceLimits(policy?.connectionPool);
    this.discovery = createDiscovery(config.discovery, { service: name, env: opts.env });
    this.endpoints = new EndpointSet({
      service: name,
      provider: this.discovery.kind,
      balancer: createBalancer(policy?.loadBalancer, { zone: opts.zone }),
      subsets,
      connectionPool: policy?.connectionPool,
      clock: opts.clock,
      logger: opts.logger,
      drainTimeoutMs: SERVICE_DEFAULTS.drainTimeoutMs,
    });
  }

  start(): void {
    this.discovery.start(this.endpoints);
  }

  async close(timeoutMs: number): Promise<void> {
    this.breaker?.shutdown();
    await this.discovery.close().catch(() => {});
    await this.endpoints.close(timeoutMs);
  }
}
