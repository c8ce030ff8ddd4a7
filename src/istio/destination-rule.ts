/** DestinationRule (networking.istio.io): the tables of its fields, as fromIstio reads them. */
import { mapHost } from './hosts.ts';
import { scopeField } from './scope.ts';
import {
  custom,
  type Handler,
  isObject,
  list,
  note,
  obj,
  onlyFalse,
  problem,
  record,
  SKIP,
  scalar,
} from './walk.ts';

/**
 * `loadBalancer`: carried over field by field; values are checked by the mesh config schema when
 * the result is given to createMesh (e.g. `simple: PASSTHROUGH` is refused there).
 */
const loadBalancer = obj({
  simple: scalar,
  consistentHash: obj({
    httpHeaderName: scalar,
    httpCookie: obj(
      { name: scalar, path: scalar, ttl: scalar },
      { attributes: 'cookie attributes are not supported' },
    ),
    httpQueryParameterName: scalar,
    useSourceIp: scalar,
    ringHash: obj({ minimumRingSize: scalar }),
    maglev: obj({ tableSize: scalar }),
    minimumRingSize: scalar,
  }),
  localityLbSetting: obj(
    { enabled: scalar },
    {
      distribute:
        'localityLbSetting.distribute is not supported (zones only: same zone first, then failover)',
      failover: 'localityLbSetting.failover is not supported (zones only: same zone first, then failover)',
      failoverPriority: 'localityLbSetting.failoverPriority is not supported',
    },
  ),
  warmupDurationSecs: scalar,
  warmup: obj({ duration: scalar, minimumPercent: scalar, aggression: scalar }),
});

const outlierFields = obj(
  {
    consecutive5xxErrors: scalar,
    consecutiveGatewayErrors: scalar,
    consecutiveLocalOriginFailures: scalar,
    splitExternalLocalOriginErrors: custom(
      'true: local-origin failures (refused, reset, timeout) are counted apart, 5 in a row eject unless consecutiveLocalOriginFailures says otherwise',
      () => SKIP,
    ),
    interval: scalar,
    baseEjectionTime: scalar,
    maxEjectionPercent: scalar,
    minHealthPercent: scalar,
    consecutiveErrors: custom('deprecated: accepted with a warning and ignored, as Istio does', () => SKIP),
  },
  {},
  ['splitExternalLocalOriginErrors', 'consecutiveErrors'],
);

/** Envoy's default consecutive_local_origin_failure, which Istio leaves in place. */
const ENVOY_LOCAL_ORIGIN_FAILURES = 5;

/**
 * `outlierDetection`, with the semantics Istio programs (cluster_traffic_policy.go
 * applyOutlierDetection): success-rate ejection off (enforcing_success_rate 0), local-origin
 * failures counted apart only with `splitExternalLocalOriginErrors`, the deprecated
 * `consecutiveErrors` ignored with a warning.
 */
const outlierDetection: Handler = custom(
  "Istio's semantics: no success-rate ejection; local-origin failures apart only when split",
  (v, path, cx) => {
    const out = outlierFields(v, path, cx);
    if (out === SKIP || !isObject(v) || !isObject(out)) return out;
    if (v.consecutiveErrors !== undefined && v.consecutiveErrors !== null) {
      note(
        cx,
        `${path}.consecutiveErrors`,
        'is deprecated and has no effect in Istio (use consecutive5xxErrors or consecutiveGatewayErrors); ignored',
      );
    }
    const split = v.splitExternalLocalOriginErrors;
    if (split !== undefined && split !== null && typeof split !== 'boolean') {
      problem(cx, `${path}.splitExternalLocalOriginErrors`, `expected true or false, got ${String(split)}`);
    }
    if (split === true) {
      out.consecutiveLocalOriginFailures ??= ENVOY_LOCAL_ORIGIN_FAILURES;
    } else if (out.consecutiveLocalOriginFailures !== undefined) {
      // Istio's validation refuses it: without the split, local-origin failures count as 5xx.
      problem(
        cx,
        `${path}.consecutiveLocalOriginFailures`,
        'is set but splitExternalLocalOriginErrors is not true (Istio refuses this)',
      );
      delete out.consecutiveLocalOriginFailures;
    }
    // Istio: "SuccessRate based outlier detection should be disabled".
    out.enforcingSuccessRate = 0;
    return out;
  },
  outlierFields,
);

/** ClientTLSSettings: the same field names in meshwork's trafficPolicy.tls (docs/mtls.md). */
const clientTls = obj(
  {
    mode: scalar,
    caCertificates: scalar,
    clientCertificate: scalar,
    privateKey: scalar,
    subjectAltNames: list(scalar),
    sni: scalar,
    insecureSkipVerify: onlyFalse('insecureSkipVerify is not supported: meshwork always verifies the server'),
  },
  {
    credentialName:
      'credentialName (a Kubernetes secret) is not supported: mount the secret and give caCertificates, clientCertificate and privateKey as file paths',
    caCrl: 'caCrl is not supported',
  },
  ['insecureSkipVerify'],
);

const connectionPool = obj({
  tcp: obj(
    { maxConnections: scalar, connectTimeout: scalar },
    {
      tcpKeepalive: 'tcpKeepalive is not supported',
      maxConnectionDuration: 'maxConnectionDuration is not supported',
      idleTimeout: 'tcp.idleTimeout is not supported (use http.idleTimeout)',
    },
  ),
  http: obj(
    {
      http1MaxPendingRequests: scalar,
      http2MaxRequests: scalar,
      maxRequestsPerConnection: scalar,
      idleTimeout: scalar,
    },
    {
      maxRetries: 'maxRetries is not supported (use retries and the retry budget)',
      h2UpgradePolicy: 'h2UpgradePolicy is not supported',
      useClientProtocol: 'useClientProtocol is not supported',
      maxConcurrentStreams: 'maxConcurrentStreams is not supported',
      http2KeepAlive: 'http2KeepAlive is not supported',
    },
  ),
});

const trafficPolicyFields = obj(
  { loadBalancer, outlierDetection, tls: clientTls, connectionPool },
  {
    portLevelSettings: 'portLevelSettings are not supported',
    tunnel: 'tunnel is not supported',
    proxyProtocol: 'proxyProtocol is not supported',
    retryBudget: 'retryBudget is not supported (meshwork has its own service-level retryBudget)',
  },
);

/**
 * A trafficPolicy. With `outlierDetection`, Istio sets Envoy's healthy panic threshold to
 * `minHealthPercent` (default 0: no panic mode), so the converted policy does the same.
 */
export const trafficPolicy: Handler = custom(
  'a traffic policy; with outlierDetection the panic threshold is minHealthPercent (Istio)',
  (v, path, cx) => {
    const out = trafficPolicyFields(v, path, cx);
    if (out === SKIP || !isObject(out) || !isObject(out.outlierDetection)) return out;
    const lb = (isObject(out.loadBalancer) ? out.loadBalancer : {}) as Record<string, unknown>;
    const min = out.outlierDetection.minHealthPercent;
    lb.panicThreshold = typeof min === 'number' && min >= 0 ? min : 0;
    out.loadBalancer = lb;
    return out;
  },
  trafficPolicyFields,
);

/** A subset's policy: its fields replace the service's (Istio's merge), so nothing is added to it. */
const subset = obj({ name: scalar, labels: record(scalar), trafficPolicy: trafficPolicyFields });

export const destinationRuleSpec = obj(
  {
    host: mapHost,
    trafficPolicy,
    subsets: list(subset),
    exportTo: scopeField('the DestinationRule is left out unless it is exported to this namespace'),
    workloadSelector: scopeField(
      'the DestinationRule is left out unless it selects this workload (the workloadLabels option)',
    ),
  },
  {},
  ['exportTo', 'workloadSelector'],
);
