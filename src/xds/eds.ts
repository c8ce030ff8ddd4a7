/**
 * Endpoints from EDS, as discovery providers: each service whose `discovery` is
 * `{ xds: { cluster } }` gets a provider that follows that cluster's ClusterLoadAssignment
 * (through its CDS `eds_cluster_config.service_name`). A provider pushes the difference with what
 * it pushed before, so an endpoint that stays keeps its pool and load history; it is ready once
 * the first assignment arrived, or the control plane said there is none.
 */
import {
  type DiscoveryChange,
  type DiscoveryProvider,
  type DiscoverySink,
  type DiscoveryStatus,
  diffEndpoints,
  type EndpointSpec,
} from '../discovery/types.ts';
import { type EndpointsModel, endpointSpecs } from './resources.ts';

interface ClusterInfo {
  /** The ClusterLoadAssignment name (eds_cluster_config.service_name, else the cluster name). */
  edsName: string;
  localityWeighted: boolean;
}

export class EdsRegistry {
  readonly #clusters = new Map<string, ClusterInfo>();
  /** undefined value = known not to exist. */
  readonly #assignments = new Map<string, EndpointsModel | undefined>();
  readonly #providers = new Map<string, Set<XdsEdsProvider>>();
  /** Called when the set of clusters with a started provider changes (they must be watched). */
  onDemandChanged: () => void = () => {};

  provider(cluster: string): DiscoveryProvider {
    return new XdsEdsProvider(this, cluster);
  }

  /** Clusters some started provider follows. */
  demanded(): Set<string> {
    return new Set([...this.#providers].filter(([, s]) => s.size > 0).map(([c]) => c));
  }

  edsName(cluster: string): string | undefined {
    return this.#clusters.get(cluster)?.edsName;
  }

  setCluster(cluster: string, info: ClusterInfo | undefined): void {
    const before = this.#clusters.get(cluster);
    if (info) this.#clusters.set(cluster, info);
    else this.#clusters.delete(cluster);
    if (before?.edsName !== info?.edsName || before?.localityWeighted !== info?.localityWeighted)
      this.#notifyCluster(cluster);
  }

  setAssignment(edsName: string, model: EndpointsModel | undefined): void {
    this.#assignments.set(edsName, model);
    for (const [cluster, info] of this.#clusters) if (info.edsName === edsName) this.#notifyCluster(cluster);
  }

  forgetAssignment(edsName: string): void {
    this.#assignments.delete(edsName);
  }

  /** The endpoints of a cluster now: undefined while unknown. */
  current(cluster: string): EndpointSpec[] | undefined {
    const info = this.#clusters.get(cluster);
    if (!info || !this.#assignments.has(info.edsName)) return undefined;
    const m = this.#assignments.get(info.edsName);
    return m ? endpointSpecs(m, info.localityWeighted) : [];
  }

  /** A cluster the control plane says does not exist: its providers are ready, empty. */
  clusterMissing(cluster: string): void {
    for (const p of this.#providers.get(cluster) ?? []) p.update([]);
  }

  add(p: XdsEdsProvider): void {
    let set = this.#providers.get(p.cluster);
    if (!set) {
      set = new Set();
      this.#providers.set(p.cluster, set);
    }
    const first = set.size === 0;
    set.add(p);
    if (first) this.onDemandChanged();
    const now = this.current(p.cluster);
    if (now) p.update(now);
  }

  remove(p: XdsEdsProvider): void {
    const set = this.#providers.get(p.cluster);
    if (!set?.delete(p)) return;
    if (set.size === 0) {
      this.#providers.delete(p.cluster);
      this.onDemandChanged();
    }
  }

  #notifyCluster(cluster: string): void {
    const now = this.current(cluster);
    if (!now) return;
    for (const p of this.#providers.get(cluster) ?? []) p.update(now);
  }
}

export class XdsEdsProvider implements DiscoveryProvider {
  readonly kind = 'xds';
  readonly cluster: string;
  readonly #registry: EdsRegistry;
  #sink: DiscoverySink | undefined;
  #current = new Map<string, EndpointSpec>();
  #status: DiscoveryStatus = { provider: 'xds', state: 'starting', updates: 0, errors: 0, skipped: 0 };

  constructor(registry: EdsRegistry, cluster: string) {
    this.#registry = registry;
    this.cluster = cluster;
  }

  start(sink: DiscoverySink): void {
    this.#sink = sink;
    this.#registry.add(this);
  }

  update(specs: EndpointSpec[]): void {
    const sink = this.#sink;
    if (!sink) return;
    const changes: DiscoveryChange[] = diffEndpoints(this.#current, specs);
    this.#current = new Map(specs.map((s) => [s.address, s]));
    if (changes.length > 0) sink.apply(changes);
    this.#status.updates++;
    this.#status.lastUpdateAt = new Date().toISOString();
    if (this.#status.state === 'starting') {
      this.#status.state = 'ready';
      sink.ready();
    }
  }

  status(): DiscoveryStatus {
    return { ...this.#status };
  }

  async close(): Promise<void> {
    this.#registry.remove(this);
    this.#sink = undefined;
    this.#status.state = 'closed';
  }
}
