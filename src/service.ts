import { ENDPOINT_DEFAULTS } from './balancer/endpoint.ts';
import { EndpointSet, type SubsetSpec } from './balancer/endpoint-set.ts';
import { createBalancer } from './balancer/index.ts';
import type { Clock } from './balancer/types.ts';
import type { ServiceConfig } from './config/schema.ts';
import { createDiscovery } from './discovery/index.ts';
import type { DiscoveryProvider } from './discovery/types.ts';
import { MeshworkConfigError } from './errors.ts';
import type { Logger } from './telemetry/logger.ts';
import { ClientTls } from './tls/client.ts';
import type { MeshIdentity } from './tls/identity.ts';

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
  /** The mesh-wide identity, for `tls.mode: ISTIO_MUTUAL`. */
  identity?: MeshIdentity | undefined;
}

/** Everything the pipeline knows about one configured service, built once at createMesh. */
export class ServiceRuntime {
  readonly name: string;
  readonly config: ServiceConfig;
  readonly endpoints: EndpointSet;
  readonly discovery: DiscoveryProvider;
  readonly initialTimeoutMs: number;
  /** Client TLS (trafficPolicy.tls), when its mode is not DISABLE. */
  readonly tls: ClientTls | undefined;

  constructor(name: string, config: ServiceConfig, opts: ServiceRuntimeOptions) {
    this.name = name;
    this.config = config;
    this.initialTimeoutMs = SERVICE_DEFAULTS.initialTimeoutMs;
    const policy = config.trafficPolicy;
    const subsets: SubsetSpec[] = [];
    this.tls = createClientTls(name, config, opts);
    this.discovery = createDiscovery(config.discovery, { service: name, env: opts.env });
    this.endpoints = new EndpointSet({
      service: name,
      provider: this.discovery.kind,
      balancer: createBalancer(policy?.loadBalancer, { zone: opts.zone }),
      subsets,
      connectionPool: policy?.connectionPool,
      connect: this.tls?.connect,
      clock: opts.clock,
      logger: opts.logger,
      drainTimeoutMs: SERVICE_DEFAULTS.drainTimeoutMs,
    });
  }

  start(): void {
    this.discovery.start(this.endpoints);
  }

  async close(timeoutMs: number): Promise<void> {
    await this.discovery.close().catch(() => {});
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
  });
}
