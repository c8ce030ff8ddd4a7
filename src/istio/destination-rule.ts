/** DestinationRule (networking.istio.io): the tables of its fields, as fromIstio reads them. */
import { mapHost } from './hosts.ts';
import { scopeField } from './scope.ts';
import {
  custom,
  type Handler,
  ignored,
  isObject,
  list,
  note,
  obj,
  problem,
  record,
  SKIP,
  scalar,
  show,
} from './walk.ts';

/**
 * `loadBalancer`: carried over field by field; values are checked by the mesh config schema when
 * the result is given to createMesh (e.g. `simple: PASSTHROUGH` is refused there).
 */
const loadBalancer = obj(
  {
    simple: scalar,
    consistentHash: obj({
      httpHeaderName: scalar,
      httpCookie: obj({
        name: scalar,
        path: scalar,
        ttl: scalar,
        attributes: list(obj({ name: scalar, value: scalar })),
      }),
      httpQueryParameterName: scalar,
      useSourceIp: scalar,
      ringHash: obj({ minimumRingSize: scalar }),
      maglev: obj({ tableSize: scalar }),
      minimumRingSize: scalar,
    }),
    localityLbSetting: obj({
      enabled: scalar,
      distribute: list(obj({ from: scalar, to: record(scalar) })),
      failover: list(obj({ from: scalar, to: scalar })),
      failoverPriority: list(scalar),
    }),
    warmupDurationSecs: scalar,
    warmup: obj({ duration: scalar, minimumPercent: scalar, aggression: scalar }),
  },
  {
    zoneAwareLbSetting:
      "zoneAwareLbSetting (Envoy's zone-aware routing) is not supported; localityLbSetting (same zone first, spill over by health) is",
  },
);

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
    outlierDetectionHttpErrorCodes: list(scalar),
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

const clientTlsFields = obj(
  {
    mode: scalar,
    caCertificates: scalar,
    clientCertificate: scalar,
    privateKey: scalar,
    subjectAltNames: list(scalar),
    sni: scalar,
    insecureSkipVerify: scalar,
    caCrl: scalar,
    credentialName: custom(
      'files of the mounted secret: <credentialsDir>/<name>/tls.crt, tls.key, ca.crt (the credentialsDir option)',
      () => SKIP,
    ),
  },
  {},
  ['credentialName'],
);

/**
 * ClientTLSSettings: the same field names in meshwork's trafficPolicy.tls (docs/mtls.md).
 * `credentialName` names a Kubernetes secret: mounted as a directory (a secret volume), its files
 * are `tls.crt`, `tls.key` and `ca.crt`, the keys Istio reads; `insecureSkipVerify: true` is
 * carried with a loud warning.
 */
const clientTls: Handler = custom(
  'ClientTLSSettings; credentialName read from a mounted secret directory',
  (v, path, cx) => {
    const out = clientTlsFields(v, path, cx);
    if (!isObject(v) || !isObject(out)) return out;
    if (out.insecureSkipVerify === true) {
      note(
        cx,
        `${path}.insecureSkipVerify`,
        'is true: the server certificate and name will NOT be verified (anyone in between is trusted); meshwork does as asked and logs a warning when the mesh starts',
      );
    }
    const name = v.credentialName;
    if (name !== undefined && name !== null) {
      if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
        problem(cx, `${path}.credentialName`, `is not a Kubernetes secret name (got ${show(name)})`);
        return out;
      }
      if (
        out.caCertificates !== undefined ||
        out.clientCertificate !== undefined ||
        out.privateKey !== undefined
      ) {
        problem(
          cx,
          `${path}.credentialName`,
          'is set together with file paths (Istio: credentialName wins); use one',
        );
        return out;
      }
      const dir = `${cx.credentialsDir}/${name}`;
      out.caCertificates = `${dir}/ca.crt`;
      if (out.mode === 'MUTUAL') {
        out.clientCertificate = `${dir}/tls.crt`;
        out.privateKey = `${dir}/tls.key`;
      }
      note(
        cx,
        `${path}.credentialName`,
        `is read from the secret mounted at ${dir} (${out.mode === 'MUTUAL' ? 'tls.crt, tls.key, ca.crt' : 'ca.crt'})`,
      );
    }
    return out;
  },
  clientTlsFields,
);

/** Counted per service, so refused on a subset or a port (createMesh refuses them there too). */
const PER_SERVICE =
  "is counted per service in meshwork, not per subset or port: set it on the DestinationRule's trafficPolicy";

function connectionPoolFields(narrow: boolean): Handler {
  return obj({
    tcp: obj(
      {
        maxConnections: scalar,
        connectTimeout: scalar,
        tcpKeepalive: obj({
          time: scalar,
          interval: ignored(
            "Node.js cannot set it per socket: the system's value applies",
            "cannot be set per socket from Node.js: the system's value applies",
          ),
          probes: ignored(
            "Node.js cannot set it per socket: the system's value applies",
            "cannot be set per socket from Node.js: the system's value applies",
          ),
        }),
        maxConnectionDuration: scalar,
        idleTimeout: custom('the HTTP idle timeout when http.idleTimeout is unset (Istio)', () => SKIP),
      },
      {},
      ['idleTimeout'],
    ),
    http: obj(
      {
        http1MaxPendingRequests: scalar,
        maxRequestsPerConnection: scalar,
        idleTimeout: scalar,
        ...(narrow ? {} : { http2MaxRequests: scalar, maxRetries: scalar }),
        // HTTP/2 to upstreams: UPGRADE is h2c by prior knowledge on a cleartext service and ALPN
        // h2 over TLS; useClientProtocol keeps HTTP/1.1; maxConcurrentStreams bounds each session.
        h2UpgradePolicy: scalar,
        useClientProtocol: scalar,
        maxConcurrentStreams: scalar,
        http2KeepAlive: ignored(
          'applies to HTTP/2 connections only; meshwork opens HTTP/1.1 ones',
          'applies to HTTP/2 connections only; meshwork opens HTTP/1.1 ones: no effect',
        ),
      },
      narrow ? { http2MaxRequests: PER_SERVICE, maxRetries: PER_SERVICE } : {},
      ['http2KeepAlive'],
    ),
  });
}

/**
 * connectionPool. `tcp.idleTimeout` is Istio's HTTP idle timeout when `http.idleTimeout` is
 * unset; `http2KeepAlive` has no effect (meshwork keeps no HTTP/2 keepalive pings of its own).
 */
function connectionPool(narrow: boolean): Handler {
  const fields = connectionPoolFields(narrow);
  return custom(
    'connectionPool; tcp.idleTimeout is the HTTP idle timeout when http.idleTimeout is unset',
    (v, path, cx) => {
      const out = fields(v, path, cx);
      if (!isObject(v) || !isObject(out)) return out;
      const tcp = isObject(v.tcp) ? v.tcp : {};
      const http = isObject(v.http) ? v.http : {};
      if (
        tcp.idleTimeout !== undefined &&
        tcp.idleTimeout !== null &&
        (http.idleTimeout === undefined || http.idleTimeout === null)
      ) {
        out.http = { ...(isObject(out.http) ? out.http : {}), idleTimeout: tcp.idleTimeout };
      }
      return out;
    },
    fields,
  );
}

const NOT_HERE = {
  tunnel:
    'tunnel (HTTP CONNECT tunnelling of TCP or TLS routes, which Istio does not apply to HTTP routes) is not supported',
  proxyProtocol: 'proxyProtocol is not supported',
};

const retryBudget = obj({ percent: scalar, minRetryConcurrency: scalar, budgetInterval: scalar });
const NARROW_OUTLIER =
  "outlierDetection on a subset or a port is not supported (meshwork detects outliers per service): set it on the DestinationRule's trafficPolicy";

/** One `portLevelSettings` entry: the policy of the endpoints on that port (their own cluster). */
const portLevelSettings = list(
  obj(
    { port: obj({ number: scalar }), loadBalancer, tls: clientTls, connectionPool: connectionPool(true) },
    { outlierDetection: NARROW_OUTLIER },
  ),
);

const trafficPolicyFields = obj(
  {
    loadBalancer,
    outlierDetection,
    tls: clientTls,
    connectionPool: connectionPool(false),
    portLevelSettings,
    retryBudget,
  },
  NOT_HERE,
);

/** A subset's policy (its own cluster): pools, TLS and balancer; no outlier detection of its own. */
const subsetPolicyFields = obj(
  { loadBalancer, tls: clientTls, connectionPool: connectionPool(true), portLevelSettings },
  {
    ...NOT_HERE,
    outlierDetection: NARROW_OUTLIER,
    retryBudget: "is counted per service in meshwork: set it on the DestinationRule's trafficPolicy",
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
const subset = obj({ name: scalar, labels: record(scalar), trafficPolicy: subsetPolicyFields });

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
