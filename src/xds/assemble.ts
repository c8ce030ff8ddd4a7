/**
 * The xDS resources a mesh follows, put together as meshwork configuration: the same `services`
 * (discovery, trafficPolicy, http routes, subsets) createMesh takes.
 *
 *   - each listener (URL authority) is a service with no endpoints of its own whose `http` routes
 *     are those of the virtual host matching the authority (gRFC A28's domain rules: exact, then
 *     the longest suffix wildcard, the longest prefix wildcard, then "*"); no virtual host, or a
 *     route configuration that does not exist, answers 404 (Envoy's "no route");
 *   - each cluster a route (or mirror) names is a service: `discovery: { xds: { cluster } }`
 *     (or static / dns for STATIC and DNS clusters) with the cluster's trafficPolicy; a hashing
 *     cluster (RING_HASH, MAGLEV) gets one subset per route hash policy (Envoy hashes on the
 *     route's key); a cluster that does not exist has no endpoints (requests fail, as Envoy's 503);
 *   - route timeouts are Envoy's: `timeout` (15 s when unset, 0 = none) bounded by
 *     max_stream_duration (the route's, else the listener's); the fault filter's own config
 *     applies to routes without a per-route one, and no fault applies without the filter;
 *   - a listener whose routes name a cluster not yet received keeps its previous configuration
 *     until the cluster arrives or is known not to exist (no config tears, gRFC A74).
 */

import type { ServiceNames } from './names.ts';
import { shortHash } from './names.ts';
import type {
  ClusterModel,
  Fragment,
  ListenerModel,
  RouteConfigModel,
  RouteModel,
  VirtualHostModel,
} from './resources.ts';
import { CLUSTER_REF } from './resources.ts';

/** Envoy's RouteAction.timeout default. */
export const ENVOY_ROUTE_TIMEOUT_MS = 15_000;

export interface XdsView {
  listeners: ReadonlyMap<string, ListenerModel>;
  routes: ReadonlyMap<string, RouteConfigModel>;
  clusters: ReadonlyMap<string, ClusterModel>;
  missingListeners: ReadonlySet<string>;
  missingRoutes: ReadonlySet<string>;
  missingClusters: ReadonlySet<string>;
}

export interface AuthorityInput {
  authority: string;
  /** Listener names to try, in order of preference (the first that exists is used). */
  listeners: readonly string[];
}

/** One listener's service as last assembled complete. */
export interface ListenerService {
  name: string;
  /** The listener resource it was built from. */
  listener: string;
  config: Fragment;
  clusters: Set<string>;
  /** Hash keys per cluster its routes use. */
  hashes: Map<string, Map<string, Fragment>>;
}

export interface Assembly {
  /** Service name → config (input form). */
  services: Map<string, Fragment>;
  /** Authority → listener service, for the complete ones (kept ones included). */
  listeners: Map<string, ListenerService>;
  /** Authorities whose listener does not exist. */
  absent: Set<string>;
  wants: { listener: Set<string>; route: Set<string>; cluster: Set<string> };
  /** Cluster → its service name, for every cluster service in `services`. */
  clusterServices: Map<string, string>;
}

export interface AssembleOptions {
  initialTimeoutMs: number;
  /** Clusters followed by configured services (`discovery.xds`), besides the routes' ones. */
  demanded: ReadonlySet<string>;
}

export function assemble(
  authorities: readonly AuthorityInput[],
  view: XdsView,
  names: ServiceNames,
  previous: ReadonlyMap<string, ListenerService>,
  opts: AssembleOptions,
): Assembly {
  const out: Assembly = {
    services: new Map(),
    listeners: new Map(),
    absent: new Set(),
    wants: { listener: new Set(), route: new Set(), cluster: new Set(opts.demanded) },
    clusterServices: new Map(),
  };
  for (const { authority, listeners } of authorities) {
    for (const l of listeners) out.wants.listener.add(l);
    if (listeners.every((l) => view.missingListeners.has(l))) {
      out.absent.add(authority);
      continue;
    }
    // The first candidate that exists; a preferred one not known yet does not hold back a later one.
    const name = listeners.find((l) => view.listeners.has(l));
    const l = name === undefined ? undefined : view.listeners.get(name);
    const built = l && name !== undefined ? buildListener(authority, name, l, view, names, out) : undefined;
    const before = previous.get(authority);
    // A listener deleted since stops serving at once; one waiting for a cluster keeps its last config.
    const kept = built ?? (before && !view.missingListeners.has(before.listener) ? before : undefined);
    if (kept) out.listeners.set(authority, kept);
  }
  // Cluster services: those of every listener served (complete or kept), and the demanded ones.
  const hashes = new Map<string, Map<string, Fragment>>();
  const clusters = new Set(opts.demanded);
  for (const ls of out.listeners.values()) {
    for (const c of ls.clusters) {
      clusters.add(c);
      out.wants.cluster.add(c);
    }
    for (const [c, keys] of ls.hashes) {
      let m = hashes.get(c);
      if (!m) {
        m = new Map();
        hashes.set(c, m);
      }
      for (const [k, v] of keys) m.set(k, v);
    }
  }
  for (const c of [...clusters].sort()) {
    const name = names.cluster(c);
    out.clusterServices.set(c, name);
    out.services.set(name, clusterService(c, view, hashes.get(c), opts.initialTimeoutMs));
  }
  for (const [authority, ls] of out.listeners) {
    void authority;
    out.services.set(ls.name, ls.config);
  }
  return out;
}

/** The listener's service, or undefined while a resource it needs has not arrived. */
function buildListener(
  authority: string,
  listener: string,
  l: ListenerModel,
  view: XdsView,
  names: ServiceNames,
  out: Assembly,
): ListenerService | undefined {
  let rc: RouteConfigModel | undefined = l.inline;
  if (!rc && l.rds !== undefined) {
    out.wants.route.add(l.rds);
    rc = view.routes.get(l.rds);
    if (!rc && !view.missingRoutes.has(l.rds)) return undefined;
  }
  const name = names.listener(authority);
  const vh = rc ? pickVirtualHost(rc.virtualHosts, authority) : undefined;
  const used = new Set<string>();
  for (const r of vh?.routes ?? []) for (const c of r.clusters) used.add(c);
  for (const c of used) out.wants.cluster.add(c);
  // Wait for every cluster the routes name: they decide TLS, balancing and endpoints.
  for (const c of used) if (!view.clusters.has(c) && !view.missingClusters.has(c)) return undefined;
  const hashes = new Map<string, Map<string, Fragment>>();
  const http: Fragment[] = [];
  for (const r of vh?.routes ?? []) http.push(...finishRoute(r, l, view, names, hashes));
  if (http.length === 0) http.push(NO_ROUTE);
  return {
    name,
    listener,
    config: { discovery: { static: [] }, http },
    clusters: used,
    hashes,
  };
}

/** A route no request matches (paths are never empty): with it, every request gets Envoy's 404 "no route". */
const NO_ROUTE: Fragment = {
  name: 'no-route',
  match: [{ uri: { exact: '' } }],
  route: [{ destination: {} }],
};

function finishRoute(
  r: RouteModel,
  l: ListenerModel,
  view: XdsView,
  names: ServiceNames,
  hashes: Map<string, Map<string, Fragment>>,
): Fragment[] {
  const http = structuredClone(r.http) as Fragment;
  if (!r.local) {
    const timeouts = [
      r.timeoutMs ?? ENVOY_ROUTE_TIMEOUT_MS,
      r.maxStreamDurationMs ?? l.maxStreamDurationMs ?? 0,
    ];
    const bounded = timeouts.filter((t) => t > 0);
    http.timeout = bounded.length > 0 ? Math.min(...bounded) : 0;
  }
  if (l.faultFilter !== undefined) {
    const f = r.faults.has(l.faultFilter) ? r.faults.get(l.faultFilter) : l.fault;
    if (f) http.fault = f;
  }
  const hostOf = (ref: unknown, withHash: boolean): { host: string; subset?: string } => {
    const m = CLUSTER_REF.exec(String(ref));
    const cluster = r.clusters[Number(m?.[1])] as string;
    const host = names.cluster(cluster);
    const model = view.clusters.get(cluster);
    if (withHash && r.hash && model?.hash) {
      const key = JSON.stringify(r.hash);
      const subset = `hash-${shortHash(key)}`;
      let m2 = hashes.get(cluster);
      if (!m2) {
        m2 = new Map();
        hashes.set(cluster, m2);
      }
      m2.set(subset, r.hash);
      return { host, subset };
    }
    return { host };
  };
  for (const d of (http.route as Fragment[] | undefined) ?? []) {
    const dest = d.destination as Fragment;
    if (dest.host !== undefined) Object.assign(dest, hostOf(dest.host, true));
  }
  if (http.mirror) Object.assign(http.mirror as Fragment, hostOf((http.mirror as Fragment).host, false));
  for (const m of (http.mirrors as Fragment[] | undefined) ?? [])
    Object.assign(m.destination as Fragment, hostOf((m.destination as Fragment).host, false));
  if (r.clusterHeader === undefined) return [http];
  return expandClusterHeader(http, r.clusterHeader, view, names);
}

/**
 * cluster_header: one route per cluster known, matching the header's value, then one answering
 * 503 for any other value (Envoy's "cluster not found").
 */
function expandClusterHeader(http: Fragment, header: string, view: XdsView, names: ServiceNames): Fragment[] {
  const out: Fragment[] = [];
  const block = (http.match as Fragment[])[0] as Fragment;
  const conds = (block.headers as Record<string, unknown> | undefined) ?? {};
  if (!Object.hasOwn(conds, header)) {
    for (const c of [...view.clusters.keys()].sort()) {
      const copy = structuredClone(http);
      const b = (copy.match as Fragment[])[0] as Fragment;
      b.headers = { ...((b.headers as object) ?? {}), [header]: { exact: c } };
      copy.route = [{ destination: { host: names.cluster(c) } }];
      if (copy.name !== undefined) copy.name = `${String(copy.name)}/${c}`;
      out.push(copy);
    }
  }
  const none = structuredClone(http);
  none.route = [{ destination: {} }];
  none.fault = { abort: { httpStatus: 503, percentage: { value: 100 } } };
  delete none.retries;
  delete none.mirror;
  delete none.mirrorPercentage;
  delete none.mirrors;
  out.push(none);
  return out;
}

function clusterService(
  c: string,
  view: XdsView,
  hashes: Map<string, Fragment> | undefined,
  initialTimeoutMs: number,
): Fragment {
  const m = view.clusters.get(c);
  // Not received (yet) or does not exist: no endpoints.
  if (!m) return { discovery: { static: [] } };
  let discovery: Fragment;
  if (m.discovery.kind === 'eds') discovery = { xds: { cluster: c }, initialTimeout: initialTimeoutMs };
  else if (m.discovery.kind === 'static')
    discovery = { static: m.discovery.endpoints.map((e) => ({ address: e.address, weight: e.weight })) };
  else discovery = { dns: { host: m.discovery.host, port: m.discovery.port } };
  if (m.healthCheck) discovery.healthCheck = m.healthCheck;
  const trafficPolicy = structuredClone(m.trafficPolicy);
  const svc: Fragment = { discovery, trafficPolicy };
  if (m.hash) {
    // A request without a hash key lands on a random endpoint (Envoy's ring hash without a key).
    (trafficPolicy.loadBalancer as Fragment).simple = 'RANDOM';
    const size =
      m.hash.kind === 'ring'
        ? { ringHash: m.hash.minimumRingSize ? { minimumRingSize: m.hash.minimumRingSize } : {} }
        : { maglev: m.hash.tableSize ? { tableSize: m.hash.tableSize } : {} };
    const subsets = [...(hashes ?? new Map<string, Fragment>())].sort(([a], [b]) => a.localeCompare(b));
    if (subsets.length > 0)
      svc.subsets = subsets.map(([name, key]) => ({
        name,
        labels: {},
        trafficPolicy: { loadBalancer: { consistentHash: { ...key, ...size } } },
      }));
  }
  return svc;
}

/** gRFC A28 / Envoy: the most specific domain wins. */
export function pickVirtualHost(
  hosts: readonly VirtualHostModel[],
  authority: string,
): VirtualHostModel | undefined {
  const host = authority.toLowerCase();
  let best: VirtualHostModel | undefined;
  let bestRank = -1;
  let bestLen = -1;
  for (const vh of hosts) {
    for (const raw of vh.domains) {
      const d = raw.toLowerCase();
      let rank = -1;
      if (d === host) rank = 3;
      else if (d === '*') rank = 0;
      else if (d.startsWith('*') && host.endsWith(d.slice(1)) && host.length > d.length - 1) rank = 2;
      else if (d.endsWith('*') && host.startsWith(d.slice(0, -1)) && host.length > d.length - 1) rank = 1;
      if (rank < 0) continue;
      if (rank > bestRank || (rank === bestRank && d.length > bestLen)) {
        best = vh;
        bestRank = rank;
        bestLen = d.length;
      }
    }
  }
  return best;
}
