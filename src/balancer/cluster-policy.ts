/**
 * Istio's clusters: a DestinationRule gives every (port, subset) pair of a service its own Envoy
 * cluster, whose policy is the service's, overridden by its `portLevelSettings` for that port,
 * then by the subset's own policy and the subset's `portLevelSettings` (Istio's
 * MergeTrafficPolicy: each field set at a narrower level replaces the whole field). meshwork has no
 * service ports: the port is the endpoint's own (as `destination.port`).
 */

/** The fields a cluster's policy has (a subset of the mesh's trafficPolicy). */
export interface ClusterPolicyFields {
  loadBalancer?: unknown;
  connectionPool?: unknown;
  outlierDetection?: unknown;
  tls?: unknown;
  circuitBreaker?: unknown;
}

export interface PolicyWithPorts extends ClusterPolicyFields {
  portLevelSettings?: readonly (ClusterPolicyFields & { port: { number: number } })[] | undefined;
}

const FIELDS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls', 'circuitBreaker'] as const;

function overlay<P extends ClusterPolicyFields>(
  base: P | undefined,
  over: ClusterPolicyFields | undefined,
): P | undefined {
  if (over === undefined) return base;
  let out: P | undefined;
  for (const k of FIELDS) {
    if (over[k] === undefined) continue;
    out ??= { ...(base ?? ({} as P)) };
    out[k] = over[k] as never;
  }
  return out ?? base;
}

/** A policy with its `portLevelSettings` for `port` applied (the list itself dropped). */
export function atPort<P extends PolicyWithPorts>(
  policy: P | undefined,
  port: number | undefined,
): P | undefined {
  if (policy === undefined || port === undefined || policy.portLevelSettings === undefined) return policy;
  const level = policy.portLevelSettings.find((s) => s.port.number === port);
  return overlay(policy, level);
}

/** The policy of the cluster (port, subset): service, service at port, subset, subset at port. */
export function clusterPolicy<P extends PolicyWithPorts>(
  service: P | undefined,
  subset: PolicyWithPorts | undefined,
  port: number | undefined,
): P | undefined {
  return overlay(atPort(service, port), atPort(subset, port));
}
