/**
 * Discovery feeds a service's endpoint set as a stream of changes. A provider knows nothing
 * about pools or balancing: it says which addresses exist (insert), which are gone (remove),
 * and when its first resolution is complete (ready).
 */

/** One endpoint as discovery describes it. `address` ("host:port") is its identity. */
export interface EndpointSpec {
  address: string;
  host: string;
  port: number;
  labels: Record<string, string>;
  /** Relative weight, > 0. Default 1. */
  weight: number;
  /** Locality zone, when known (config, Consul meta, etcd value...). */
  zone?: string | undefined;
}

/**
 * `insert` adds an endpoint or, when its address is already known, updates its labels, weight
 * and zone in place (the pool and load history are kept). `remove` starts a graceful drain.
 */
export type DiscoveryChange =
  | { type: 'insert'; endpoint: EndpointSpec }
  | { type: 'remove'; address: string }
  /**
   * Active health checks (src/discovery/health-check.ts) flip an endpoint's `healthy` flag: it
   * keeps its pool, load estimate and place in the set, and takes no requests while unhealthy.
   */
  | { type: 'health'; address: string; healthy: boolean };

export interface DiscoverySink {
  /** Apply a batch of changes atomically (one balancer rebuild). */
  apply(changes: readonly DiscoveryChange[]): void;
  /** The provider finished its first full resolution (possibly empty). */
  ready(): void;
  /**
   * The registry could not be read. The endpoint set keeps its last known endpoints.
   * Providers call this for outages, and `skipped` for single malformed records.
   */
  error(err: Error): void;
  /** A malformed record was skipped; the rest of the set stays. */
  skipped(reason: string, record: unknown): void;
}

/** Status of a provider, as the snapshot shows it. */
export interface DiscoveryStatus {
  provider: string;
  state: 'starting' | 'ready' | 'degraded' | 'closed';
  updates: number;
  errors: number;
  skipped: number;
  lastError?: string | undefined;
  lastUpdateAt?: string | undefined;
}

export interface DiscoveryProvider {
  /** Short name for the snapshot: "static", "dns", "consul", "etcd", "file". */
  readonly kind: string;
  /** Start watching; push changes into the sink. Must not throw for registry errors. */
  start(sink: DiscoverySink): void;
  /** Stop every watcher and timer. After it resolves, the provider holds nothing open. */
  close(): Promise<void>;
  /** State, counters and last error, for the snapshot (dns, consul, etcd and file have it). */
  status?(): DiscoveryStatus;
}

/** Computes the changes that turn `current` into `next` (both keyed by address). */
export function diffEndpoints(
  current: ReadonlyMap<string, EndpointSpec>,
  next: readonly EndpointSpec[],
): DiscoveryChange[] {
  const changes: DiscoveryChange[] = [];
  const seen = new Set<string>();
  for (const ep of next) {
    seen.add(ep.address);
    const old = current.get(ep.address);
    if (!old || !sameSpec(old, ep)) changes.push({ type: 'insert', endpoint: ep });
  }
  for (const address of current.keys()) if (!seen.has(address)) changes.push({ type: 'remove', address });
  return changes;
}

function sameSpec(a: EndpointSpec, b: EndpointSpec): boolean {
  if (a.weight !== b.weight || a.zone !== b.zone) return false;
  const ak = Object.keys(a.labels);
  const bk = Object.keys(b.labels);
  return ak.length === bk.length && ak.every((k) => a.labels[k] === b.labels[k]);
}
