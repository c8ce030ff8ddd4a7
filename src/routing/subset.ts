/**
 * DestinationRule subsets: which endpoints belong to a subset, and the traffic policy that
 * applies to them.
 */

/** True when `labels` has every key of `selector` with the same value (`{}` selects everything). */
export function selectorMatches(
  selector: Readonly<Record<string, string>> | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  if (selector === undefined) return true;
  for (const key in selector) {
    if (labels === undefined || labels[key] !== selector[key]) return false;
  }
  return true;
}

/**
 * The policy for a subset, as Istio merges it (MergeTrafficPolicy): each top-level field the
 * subset sets (loadBalancer, connectionPool, outlierDetection, tls...) replaces the service's
 * whole field; the fields it does not set come from the service.
 */
export function mergeSubsetPolicy<P extends object>(
  service: P | undefined,
  subset: Partial<P> | undefined,
): P | undefined {
  if (subset === undefined) return service;
  if (service === undefined) return subset as P;
  const out = { ...service } as Record<string, unknown>;
  for (const [k, v] of Object.entries(subset)) if (v !== undefined) out[k] = v;
  return out as P;
}
