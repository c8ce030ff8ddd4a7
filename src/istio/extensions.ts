/**
 * Fields of the meshwork service config that Istio's VirtualService and DestinationRule do not
 * have (meshwork extensions), by path under `services.<name>` (a subset's trafficPolicy uses the
 * `trafficPolicy.` paths). fromIstio never produces them; the table test checks that every other
 * schema field is one fromIstio reads.
 */
export const MESHWORK_EXTENSIONS: ReadonlySet<string> = new Set([
  'http[].chaos',
  'http[].retries.retryNonIdempotent',
  'http[].retries.retryAfterMax',
  'http[].retries.hedge',
  'trafficPolicy.loadBalancer.consistentHash.contextKey',
  'trafficPolicy.loadBalancer.localityLbSetting.failoverThreshold',
  'trafficPolicy.loadBalancer.panicThreshold',
  'trafficPolicy.outlierDetection.enabled',
  'trafficPolicy.outlierDetection.maxEjectionTime',
  'trafficPolicy.outlierDetection.successRateMinimumHosts',
  'trafficPolicy.outlierDetection.successRateRequestVolume',
  'trafficPolicy.outlierDetection.successRateStdevFactor',
  'trafficPolicy.outlierDetection.enforcingSuccessRate',
  'trafficPolicy.outlierDetection.failurePercentageThreshold',
  'trafficPolicy.outlierDetection.failurePercentageMinimumHosts',
  'trafficPolicy.outlierDetection.failurePercentageRequestVolume',
  'trafficPolicy.outlierDetection.enforcingFailurePercentage',
  'trafficPolicy.circuitBreaker',
  // ALPN offered to the upstream (Envoy's alpn_protocols); Istio derives it, meshwork lets you set it.
  'trafficPolicy.tls.alpnProtocols',
  // The trust domain whose bundle verifies the server; Istio takes it from the mesh's trust
  // bundles (MeshConfig), meshwork names it per destination.
  'trafficPolicy.tls.trustDomain',
]);

/**
 * The extension path of a schema path: a subset's policy and a portLevelSettings entry have the
 * service policy's fields (`subsets[].trafficPolicy.portLevelSettings[].x` is `trafficPolicy.x`).
 */
export function extensionPath(path: string): string {
  return (path.startsWith('subsets[].') ? path.slice('subsets[].'.length) : path).replace(
    'portLevelSettings[].',
    '',
  );
}

/**
 * Fields the config schema has at every level but refuses on a subset or a port (counted per
 * service: src/config/schema.ts subsetPolicyIssues); fromIstio refuses them there too.
 */
export const PER_SERVICE_ONLY =
  /(^subsets\[\]\.trafficPolicy|portLevelSettings\[\])\.(outlierDetection|circuitBreaker|retryBudget|connectionPool\.http\.(http2MaxRequests|maxRetries))$/;
