/** DestinationRule (networking.istio.io): the tables of its fields, as fromIstio reads them. */
import { mapHost } from './hosts.ts';
import { onlyDefault } from './virtual-service.ts';
import { list, obj, onlyFalse, record, scalar } from './walk.ts';

/**
 * `loadBalancer`: carried over field by field; values are checked by the mesh config schema when
 * the result is given to createMesh (e.g. `simple: PASSTHROUGH` is refused there).
 */
const loadBalancer = obj({
  simple: scalar,
  consistentHash: obj({
    httpHeaderName: scalar,
    httpCookie: obj({ name: scalar, path: scalar, ttl: scalar }),
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
});

/** `outlierDetection`: Istio's fields, as meshwork reads them. */
const outlierDetection = obj(
  {
    consecutive5xxErrors: scalar,
    consecutiveGatewayErrors: scalar,
    consecutiveLocalOriginFailures: scalar,
    interval: scalar,
    baseEjectionTime: scalar,
    maxEjectionPercent: scalar,
    minHealthPercent: scalar,
  },
  {
    splitExternalLocalOriginErrors:
      'splitExternalLocalOriginErrors is not supported (local-origin failures are always counted apart)',
    consecutiveErrors: 'consecutiveErrors is deprecated in Istio: use consecutive5xxErrors',
  },
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
    { tcpKeepalive: 'tcpKeepalive is not supported', maxConnectionDuration: 'is not supported' },
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
    },
  ),
});

export const trafficPolicy = obj(
  { loadBalancer, outlierDetection, tls: clientTls, connectionPool },
  {
    portLevelSettings: 'portLevelSettings are not supported',
    tunnel: 'tunnel is not supported',
    proxyProtocol: 'proxyProtocol is not supported',
  },
);

const subset = obj({ name: scalar, labels: record(scalar), trafficPolicy });

export const destinationRuleSpec = obj(
  {
    host: mapHost,
    trafficPolicy,
    subsets: list(subset),
    exportTo: onlyDefault('*', 'exportTo is not supported (meshwork config is per process)'),
  },
  { workloadSelector: 'workloadSelector is not supported' },
  ['exportTo'],
);
