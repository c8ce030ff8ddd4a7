import { EndpointSet, type SubsetSpec } from './balancer/endpoint-set.ts';
import { createBalancer } from './balancer/index.ts';
import type { Clock } from './balancer/types.ts';
import type { ServiceConfig } from './config/schema.ts';
import { createDiscovery } from './discovery/index.ts';
import type { DiscoveryProvider } from './discovery/types.ts';
import { compileRouter, type Router } from './routing/router.ts';
import { mergeSubsetPolicy } from './routing/subset.ts';
import type { Logger } from './telemetry/logger.ts';
import { ServiceTelemetry } from './telemetry/service-telemetry.ts';

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
}

/** Everything the pipeline knows about one configured service, built once at createMesh. */
export class ServiceRuntime {
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

  constructor(name: string, config: ServiceConfig, opts: ServiceRuntimeOptions) {
    this.name = name;
    this.config = config;
    this.initialTimeoutMs = SERVICE_DEFAULTS.initialTimeoutMs;
    this.logger = opts.logger;
    const policy = config.trafficPolicy;
    this.router = compileRouter(config.http);
    // Each DestinationRule subset gets its own pick group and balancer; the subset's policy
    // replaces the service's field by field (Istio's merge). Endpoint pools are shared by all
    // groups, so connection-pool settings come from the service-level policy.
    const subsets: SubsetSpec[] = (config.subsets ?? []).map((s) => {
      const merged = mergeSubsetPolicy(policy, s.trafficPolicy as typeof policy);
      return {
        name: s.name,
        labels: s.labels ?? {},
        balancer: createBalancer(merged?.loadBalancer, { zone: opts.zone }),
      };
    });
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
    this.telemetry = new ServiceTelemetry(name, this.endpoints, opts.logger, opts.clock);
  }

  start(): void {
    this.discovery.start(this.telemetry.discoverySink(this.endpoints));
  }

  async close(timeoutMs: number): Promise<void> {
    this.telemetry.close();
    await this.discovery.close().catch(() => {});
    await this.endpoints.close(timeoutMs);
  }
}
