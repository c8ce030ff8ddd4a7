/**
 * The clusters of one service, as Istio makes them from a DestinationRule: one per (port, subset),
 * each with its own balancer, connection-pool settings and TLS when its policy (portLevelSettings,
 * the subset's trafficPolicy) says so. See cluster-policy.ts for the merge.
 */
import type { ConnectionPoolConfig, ServiceConfig, TrafficPolicy } from '../config/schema.ts';
import { MeshworkConfigError } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { ClientTls } from '../tls/client.ts';
import type { MeshIdentity } from '../tls/identity.ts';
import type { TlsConfig } from '../tls/schema.ts';
import { atPort, clusterPolicy } from './cluster-policy.ts';
import { ENDPOINT_DEFAULTS } from './endpoint.ts';
import type { ClusterOptions } from './endpoint-set.ts';
import { createBalancer } from './index.ts';
import type { Balancer } from './types.ts';

export interface ClustersOptions {
  service: string;
  config: ServiceConfig;
  zone: string | undefined;
  labels: Readonly<Record<string, string>> | undefined;
  identity: MeshIdentity | undefined;
  logger: Logger;
  /** The service-level client TLS (trafficPolicy.tls), reused where a cluster has the same. */
  serviceTls: ClientTls | undefined;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

export class Clusters {
  readonly #opts: ClustersOptions;
  readonly #policy: TrafficPolicy | undefined;
  readonly #options = new Map<string, ClusterOptions | undefined>();
  readonly #tls = new Map<string, ClientTls>();
  /** Whether any port or subset has pools of its own (else every endpoint uses the service's). */
  readonly varies: boolean;

  constructor(opts: ClustersOptions) {
    this.#opts = opts;
    this.#policy = opts.config.trafficPolicy;
    const subsetPools = (opts.config.subsets ?? []).some((s) => {
      const tp = s.trafficPolicy as TrafficPolicy | undefined;
      return tp?.connectionPool !== undefined || tp?.tls !== undefined || tp?.portLevelSettings !== undefined;
    });
    this.varies = subsetPools || (this.#policy?.portLevelSettings?.length ?? 0) > 0;
    if (!this.varies) return;
    // Build every cluster's TLS now, so a bad file or a missing identity fails createMesh, not a
    // discovery update: the ports the policies name, and any other port (0 stands for those).
    const ports = new Set<number>([0]);
    const subsets = (opts.config.subsets ?? []).map((s) => s.name);
    for (const p of [this.#policy, ...subsets.map((n) => this.#subsetPolicy(n))])
      for (const l of p?.portLevelSettings ?? []) ports.add(l.port.number);
    for (const port of ports) for (const subset of [undefined, ...subsets]) this.options(port, subset);
  }

  #subsetPolicy(subset: string | undefined): TrafficPolicy | undefined {
    if (subset === undefined) return undefined;
    return this.#opts.config.subsets?.find((s) => s.name === subset)?.trafficPolicy as
      | TrafficPolicy
      | undefined;
  }

  /** The balancer of the cluster (subset, port). */
  balancer(subset: string | undefined, port?: number): Balancer {
    const p = clusterPolicy(this.#policy, this.#subsetPolicy(subset), port);
    return createBalancer(p?.loadBalancer, { zone: this.#opts.zone, labels: this.#opts.labels });
  }

  /** See EndpointSetOptions.clusterOptions. */
  options(port: number, subset: string | undefined): ClusterOptions | undefined {
    const key = `${port}|${subset ?? ''}`;
    if (this.#options.has(key)) return this.#options.get(key);
    const own = clusterPolicy(this.#policy, this.#subsetPolicy(subset), port);
    const base = atPort(this.#policy, port);
    let out: ClusterOptions | undefined;
    if (
      subset === undefined ||
      !same(own?.connectionPool, base?.connectionPool) ||
      !same(own?.tls, base?.tls)
    ) {
      out = {
        connectionPool: own?.connectionPool,
        connect: this.#tlsFor(own?.tls, own?.connectionPool, subset, port)?.connect,
      };
    }
    this.#options.set(key, out);
    return out;
  }

  #tlsFor(
    tls: TlsConfig | undefined,
    pool: ConnectionPoolConfig | undefined,
    subset: string | undefined,
    port: number,
  ): ClientTls | undefined {
    if (tls === undefined || tls.mode === 'DISABLE') return undefined;
    if (tls.mode === 'ISTIO_MUTUAL' && this.#opts.identity === undefined) {
      throw new MeshworkConfigError([
        {
          path: `services.${this.#opts.service} (cluster: port ${port}${subset === undefined ? '' : `, subset ${JSON.stringify(subset)}`}) tls.mode`,
          message: '"ISTIO_MUTUAL" needs the mesh-wide `identity { cert, key, ca }`',
        },
      ]);
    }
    const service = this.#policy;
    if (same(tls, service?.tls) && same(pool?.tcp, service?.connectionPool?.tcp))
      return this.#opts.serviceTls;
    const key = JSON.stringify([tls, pool?.tcp]);
    let client = this.#tls.get(key);
    if (client === undefined) {
      const where = subset === undefined ? '' : ` subset ${JSON.stringify(subset)}`;
      client = new ClientTls({
        service: this.#opts.service,
        tls,
        path: `services.${this.#opts.service}.trafficPolicy.tls (cluster: port ${port}${where})`,
        identity: this.#opts.identity,
        connectTimeoutMs: pool?.tcp?.connectTimeout ?? ENDPOINT_DEFAULTS.connectTimeoutMs,
        keepAliveInitialDelayMs: pool?.tcp?.tcpKeepalive?.time,
        logger: this.#opts.logger,
      });
      this.#tls.set(key, client);
    }
    return client;
  }

  close(): void {
    for (const t of this.#tls.values()) t.close();
    this.#tls.clear();
  }
}
