/**
 * `fromIstio(yaml)`: turns Istio VirtualService and DestinationRule documents
 * (networking.istio.io v1, v1beta1, v1alpha3; multi-document YAML, or `kind: List`) into the
 * `services` part of a meshwork config: `{ services: { reviews: { http, subsets, trafficPolicy } } }`,
 * and AuthorizationPolicy documents (security.istio.io v1, v1beta1) into its `authorization`
 * part, enforced by `mesh.inbound()`. It does no discovery: merge the result with each
 * service's `discovery` yourself.
 *
 * Every field it cannot carry over is collected with its full path; they are all thrown at once
 * in one MESHWORK_ERR_ISTIO_UNSUPPORTED error, or, with `{ strict: false }`, passed to
 * `options.warn` and returned in `result.warnings`. No field is ever dropped silently
 * (metadata other than name and namespace, and `status`, carry no routing behavior and are skipped).
 * Input that is not valid Istio at all (a host that is not a DNS name, a `__proto__` key, a field
 * named like a JavaScript built-in such as `constructor`) is a MeshworkConfigError in both modes.
 * The supported and unsupported fields are listed in docs/routing.md.
 */
import { isIP } from 'node:net';
import { parseAllDocuments } from 'yaml';
import { type ConfigIssue, ErrorCodes, MeshworkConfigError, MeshworkError } from '../errors.ts';
import { OBJECT_MEMBERS, PROTO_KEY_MESSAGE, protoKeyPaths } from './reserved.ts';
import type { ServiceConfigInput } from './schema.ts';

export interface FromIstioOptions {
  /** true (default): throw on any unsupported field; false: warn and go on without it. */
  strict?: boolean;
  /** Keep hosts as FQDNs (`reviews.default.svc.cluster.local`) instead of short names. */
  fqdn?: boolean;
  /**
   * The namespace of documents without metadata.namespace (default "default"). When given,
   * an FQDN host in another namespace is reported instead of being shortened.
   */
  namespace?: string;
  /** Receives each warning in non-strict mode (default: none; read result.warnings). */
  warn?: (message: string) => void;
  /**
   * The labels of the workload this process is (`{ app: 'travels', version: 'v1' }`): an
   * AuthorizationPolicy with a `selector` is kept when its matchLabels all match them, and left
   * out when they do not. Without this option a policy with a `selector` is reported, since
   * which workloads it covers cannot be known.
   */
  workloadLabels?: Record<string, string>;
}

/**
 * What fromIstio produces for one service, typed as the service config it goes into (add its
 * `discovery`); createMesh validates it.
 */
export type IstioService = Pick<ServiceConfigInput, 'http' | 'subsets' | 'trafficPolicy'>;

/** The same while it is being built from untyped YAML. */
interface ConvertedService {
  http?: Record<string, unknown>[];
  subsets?: Record<string, unknown>[];
  trafficPolicy?: Record<string, unknown>;
}

export interface FromIstioResult {
  services: Record<string, IstioService>;
  /** From AuthorizationPolicy documents, when there are any: `{ policies: [...] }`. */
  authorization?: { policies: Record<string, unknown>[] };
  /** Non-strict mode: what was left out, one line each. Not enumerable, so merging skips it. */
  readonly warnings: readonly string[];
}

export interface IstioProblem {
  /** `VirtualService/reviews spec.http[0].corsPolicy`. */
  readonly path: string;
  readonly message: string;
}

export class IstioUnsupportedError extends MeshworkError {
  readonly problems: readonly IstioProblem[];
  constructor(problems: readonly IstioProblem[]) {
    super(
      ErrorCodes.ISTIO_UNSUPPORTED,
      `fromIstio: ${problems.length} unsupported field(s) (pass { strict: false } to skip them with a warning):\n  ` +
        problems.map(formatProblem).join('\n  '),
    );
    this.name = 'IstioUnsupportedError';
    this.problems = problems;
  }
}

const API_VERSIONS = new Set([
  'networking.istio.io/v1',
  'networking.istio.io/v1beta1',
  'networking.istio.io/v1alpha3',
]);
const SECURITY_API_VERSIONS = new Set(['security.istio.io/v1', 'security.istio.io/v1beta1']);
const CLUSTER_FQDN =
  /^([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.svc\.cluster\.local\.?$/;
const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const TOP_LEVEL = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

function formatProblem(p: IstioProblem): string {
  return `${p.path}: ${p.message}`;
}

function show(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Per-document state while converting. */
interface Cx {
  readonly label: string;
  readonly namespace: string;
  readonly fqdn: boolean;
  readonly pinnedNamespace: string | undefined;
  readonly problems: IstioProblem[];
  /** Invalid input (not merely unsupported): thrown as a MeshworkConfigError even when not strict. */
  readonly invalid: ConfigIssue[];
}

function problem(cx: Cx, path: string, message: string): void {
  cx.problems.push({ path: `${cx.label} ${path}`, message });
}

function invalid(cx: Cx, path: string, message: string): void {
  cx.invalid.push({ path: `fromIstio ${cx.label} ${path}`, message });
}

/** A key named like an Object.prototype member is never an Istio field: refused, not reported as unsupported. */
function builtinKey(cx: Cx, path: string): void {
  invalid(cx, path, 'is not an Istio field (it is the name of a JavaScript built-in)');
}

const SKIP = Symbol('skip');
type Handler = (value: unknown, path: string, cx: Cx) => unknown;

const scalar: Handler = (v, path, cx) => {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  problem(cx, path, `expected a string, number or boolean, got ${show(v)}`);
  return SKIP;
};

const list =
  (item: Handler): Handler =>
  (v, path, cx) => {
    if (!Array.isArray(v)) {
      problem(cx, path, `expected a list, got ${show(v)}`);
      return SKIP;
    }
    const out: unknown[] = [];
    v.forEach((x, i) => {
      const r = item(x, `${path}[${i}]`, cx);
      if (r !== SKIP) out.push(r);
    });
    return out;
  };

const record =
  (item: Handler): Handler =>
  (v, path, cx) => {
    if (!isObject(v)) {
      problem(cx, path, `expected a mapping, got ${show(v)}`);
      return SKIP;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const r = item(x, `${path}.${k}`, cx);
      if (r !== SKIP) out[k] = r;
    }
    return out;
  };

/**
 * A mapping with known fields. `unsupported` gives a reason for fields meshwork knows it does
 * not carry; any other unknown field is reported too. A field whose value is null is skipped.
 */
function obj(fields: Record<string, Handler>, unsupported: Record<string, string> = {}): Handler {
  return (v, path, cx) => {
    if (!isObject(v)) {
      problem(cx, path, `expected a mapping, got ${show(v)}`);
      return SKIP;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === null || x === undefined) continue;
      const p = path ? `${path}.${k}` : k;
      if (OBJECT_MEMBERS.has(k)) {
        builtinKey(cx, p);
        continue;
      }
      const h = Object.hasOwn(fields, k) ? fields[k] : undefined;
      if (h === undefined) {
        problem(
          cx,
          p,
          `${Object.hasOwn(unsupported, k) ? unsupported[k] : 'is not supported'} (value ${show(x)})`,
        );
        continue;
      }
      const r = h(x, p, cx);
      if (r !== SKIP) out[k] = r;
    }
    // Emptied by skipped fields (non-strict): leave the whole mapping out rather than keep a
    // husk, e.g. a match block whose only condition was skipped must not turn into "match all".
    if (Object.keys(out).length === 0 && Object.values(v).some((x) => x !== null && x !== undefined))
      return SKIP;
    return out;
  };
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Istio allows a wildcard first label: `*`, `*foo`, `*-foo`. */
const WILDCARD_LABEL = /^\*([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Why `host` is not an Istio host meshwork can read (RFC 1123 labels, as Istio validates them,
 * lowercase as meshwork service names are), or undefined when it is one.
 */
function hostSyntaxProblem(host: string): string | undefined {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  const why = 'is not a valid host name (lowercase DNS labels: a-z, 0-9 and "-"';
  if (name.length === 0 || name.length > 253) return `${why}, at most 253 characters)`;
  if (/[A-Z]/.test(name)) return `${why}; meshwork service names are lowercase)`;
  if (name.includes('_')) return `${why}, no underscores)`;
  const labels = name.split('.');
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i] as string;
    if (label.includes('*')) {
      if (i === 0 && WILDCARD_LABEL.test(label)) continue;
      return `${why}; a wildcard "*" may only start the first label)`;
    }
    if (!DNS_LABEL.test(label))
      return `${why}; each label has 1-63 characters, not starting or ending with "-")`;
  }
  return undefined;
}

/** Maps an Istio host to a meshwork service name (see FromIstioOptions.fqdn). */
function mapHost(host: unknown, path: string, cx: Cx): unknown {
  if (typeof host !== 'string' || host.length === 0) {
    invalid(cx, path, `expected a host name, got ${show(host)}`);
    return SKIP;
  }
  // An IP address is a valid Istio host (it is reported below: not a meshwork service name).
  const syntax = isIP(host) === 0 ? hostSyntaxProblem(host) : undefined;
  if (syntax !== undefined) {
    invalid(cx, path, `${show(host)} ${syntax}`);
    return SKIP;
  }
  if (host.includes('*')) {
    problem(cx, path, `wildcard host ${show(host)} is not supported (name each service)`);
    return SKIP;
  }
  if (!host.includes('.')) {
    if (!SERVICE_NAME.test(host)) {
      problem(cx, path, `${show(host)} is not a valid meshwork service name`);
      return SKIP;
    }
    return cx.fqdn ? `${host}.${cx.namespace}.svc.cluster.local` : host;
  }
  const m = CLUSTER_FQDN.exec(host);
  if (m) {
    const name = m[1] as string;
    const ns = m[3] as string;
    if (cx.fqdn) return host.replace(/\.$/, '');
    if (cx.pinnedNamespace !== undefined && ns !== cx.pinnedNamespace) {
      problem(
        cx,
        path,
        `${show(host)} is in namespace "${ns}", not "${cx.pinnedNamespace}"; use { fqdn: true } to keep full names`,
      );
      return SKIP;
    }
    return name;
  }
  if (!SERVICE_NAME.test(host)) {
    problem(cx, path, `${show(host)} is not a valid meshwork service name`);
    return SKIP;
  }
  return host;
}

/** `gateways` / `exportTo` are accepted only with the value that means "the mesh, everywhere". */
function onlyDefault(defaults: string, reason: string): Handler {
  return (v, path, cx) => {
    if (Array.isArray(v) && v.every((x) => x === defaults)) return SKIP;
    problem(cx, path, `${reason} (value ${show(v)})`);
    return SKIP;
  };
}

const stringMatch = obj({ exact: scalar, prefix: scalar, regex: scalar });

const match = obj(
  {
    name: scalar,
    uri: stringMatch,
    method: stringMatch,
    headers: record(stringMatch),
    withoutHeaders: record(stringMatch),
    queryParams: record(stringMatch),
    ignoreUriCase: scalar,
    gateways: onlyDefault('mesh', 'gateway matches are not supported: meshwork routes in-process calls only'),
  },
  {
    scheme: 'scheme matches are not supported',
    authority: 'authority matches are not supported (match on a header instead)',
    port: 'port matches are not supported',
    sourceLabels: 'sourceLabels are not supported (meshwork has no caller workload labels)',
    sourceNamespace: 'sourceNamespace is not supported',
    statPrefix: 'statPrefix is not supported',
  },
);

const destination = obj({ host: mapHost, subset: scalar, port: obj({ number: scalar }) });

const headerOps = obj({ set: record(scalar), add: record(scalar), remove: list(scalar) });
const headers = obj({ request: headerOps, response: headerOps });

const routeDestination = obj({ destination, weight: scalar, headers });

/** Istio's deprecated integer `percent` becomes `percentage.value`. */
function percentField(v: Record<string, unknown>, out: Record<string, unknown>, path: string, cx: Cx): void {
  if (out.percentage === undefined && typeof v.percent === 'number') out.percentage = { value: v.percent };
  delete out.percent;
  if (out.percentage === undefined) {
    // Envoy injects nothing without a percentage, though Istio's docs once said "all" (istio/istio#36303).
    problem(
      cx,
      `${path}.percentage`,
      'is missing: Istio then injects nothing (istio/istio#36303) and meshwork needs it explicit; set percentage.value (in non-strict mode 0 is used, as Istio does)',
    );
    out.percentage = { value: 0 };
  }
}

function faultPart(
  required: string,
  fields: Record<string, Handler>,
  unsupported: Record<string, string>,
): Handler {
  const inner = obj({ ...fields, percentage: obj({ value: scalar }), percent: scalar }, unsupported);
  return (v, path, cx) => {
    const out = inner(v, path, cx);
    if (out === SKIP || !isObject(v)) return out;
    // Without its kind (a gRPC abort, an exponential delay), the fault is left out.
    if ((out as Record<string, unknown>)[required] === undefined) {
      if (!Object.keys(v).some((k) => Object.hasOwn(unsupported, k))) {
        problem(cx, `${path}.${required}`, 'is missing');
      }
      return SKIP;
    }
    percentField(v, out as Record<string, unknown>, path, cx);
    return out;
  };
}

const fault = obj({
  delay: faultPart(
    'fixedDelay',
    { fixedDelay: scalar },
    { exponentialDelay: 'exponentialDelay is not supported (Istio does not support it either)' },
  ),
  abort: faultPart(
    'httpStatus',
    { httpStatus: scalar },
    { grpcStatus: 'gRPC aborts are not supported', http2Error: 'http2Error aborts are not supported' },
  ),
});

const retries = obj({
  attempts: scalar,
  perTryTimeout: scalar,
  retryOn: scalar,
  retryRemoteLocalities: scalar,
});

const httpRouteFields = obj(
  {
    name: scalar,
    match: list(match),
    route: list(routeDestination),
    headers,
    rewrite: obj(
      { uri: scalar, authority: scalar },
      { uriRegexRewrite: 'uriRegexRewrite is not supported (use uri with a prefix match)' },
    ),
    timeout: scalar,
    retries,
    fault,
    mirror: destination,
    mirrorPercentage: obj({ value: scalar }),
    mirrorPercent: scalar,
  },
  {
    redirect: 'redirect is not supported',
    directResponse: 'directResponse is not supported',
    delegate: 'delegate is not supported',
    corsPolicy: 'corsPolicy is not supported (CORS is a server-side concern)',
    mirrors: 'mirrors (several mirrors) is not supported; use mirror',
  },
);

const httpRoute: Handler = (v, path, cx) => {
  const out = httpRouteFields(v, path, cx);
  if (out === SKIP) return out;
  const r = out as Record<string, unknown>;
  if (r.mirrorPercentage === undefined && typeof r.mirrorPercent === 'number') {
    r.mirrorPercentage = { value: r.mirrorPercent };
  }
  delete r.mirrorPercent;
  if (
    isObject(v) &&
    Array.isArray(v.match) &&
    v.match.length > 0 &&
    ((r.match as unknown[] | undefined)?.length ?? 0) === 0
  ) {
    problem(cx, `${path}.match`, 'lost every match block to skipped fields, so the route is left out');
    return SKIP;
  }
  if (r.route === undefined) {
    problem(cx, path, 'has no route (redirect, directResponse and delegate routes are not supported)');
    return SKIP;
  }
  return r;
};

/**
 * DestinationRule `loadBalancer`: carried over field by field; values are checked by the mesh
 * config schema when the result is given to createMesh (e.g. `simple: PASSTHROUGH` is refused there).
 */
const loadBalancer = obj(
  {
    simple: scalar,
    consistentHash: obj(
      {
        httpHeaderName: scalar,
        httpCookie: obj({ name: scalar, path: scalar, ttl: scalar }, {}),
        httpQueryParameterName: scalar,
        useSourceIp: scalar,
        ringHash: obj({ minimumRingSize: scalar }, {}),
        maglev: obj({ tableSize: scalar }, {}),
        minimumRingSize: scalar,
      },
      {},
    ),
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
  },
  {},
);

/** DestinationRule `outlierDetection`: Istio's fields, as meshwork reads them. */
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

/** Accepts `false` only (the default): a `true` would turn verification off, which meshwork never does. */
function onlyFalse(reason: string): Handler {
  return (v, path, cx) => {
    if (v === false || v === 'false') return SKIP;
    problem(cx, path, `${reason} (value ${show(v)})`);
    return SKIP;
  };
}

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
);

const trafficPolicy = obj(
  {
    loadBalancer,
    outlierDetection,
    tls: clientTls,
    connectionPool: obj(
      {
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
            h2UpgradePolicy: scalar,
            useClientProtocol: scalar,
            maxConcurrentStreams: scalar,
          },
          {
            maxRetries: 'maxRetries is not supported (use retries and the retry budget)',
          },
        ),
      },
      {},
    ),
  },
  {
    portLevelSettings: 'portLevelSettings are not supported',
    tunnel: 'tunnel is not supported',
    proxyProtocol: 'proxyProtocol is not supported',
  },
);

const subset = obj({ name: scalar, labels: record(scalar), trafficPolicy });

const virtualServiceSpec = obj(
  {
    hosts: list(mapHost),
    http: list(httpRoute),
    gateways: onlyDefault('mesh', 'gateways are not supported: meshwork routes in-process calls only'),
    exportTo: onlyDefault('*', 'exportTo is not supported (meshwork config is per process)'),
  },
  {
    tcp: 'tcp routes are not supported (meshwork routes HTTP)',
    tls: 'tls (SNI) routes are not supported (meshwork routes HTTP)',
  },
);

const destinationRuleSpec = obj(
  {
    host: mapHost,
    trafficPolicy,
    subsets: list(subset),
    exportTo: onlyDefault('*', 'exportTo is not supported (meshwork config is per process)'),
  },
  { workloadSelector: 'workloadSelector is not supported' },
);

const source = obj(
  { principals: list(scalar), notPrincipals: list(scalar) },
  {
    namespaces: 'namespaces is not supported: list the callers as principals (cluster.local/ns/<ns>/sa/*)',
    notNamespaces: 'notNamespaces is not supported: use notPrincipals',
    requestPrincipals: 'requestPrincipals (JWT) is not supported',
    notRequestPrincipals: 'notRequestPrincipals (JWT) is not supported',
    ipBlocks: 'ipBlocks is not supported',
    notIpBlocks: 'notIpBlocks is not supported',
    remoteIpBlocks: 'remoteIpBlocks is not supported',
    notRemoteIpBlocks: 'notRemoteIpBlocks is not supported',
  },
);

const operation = obj(
  { paths: list(scalar), notPaths: list(scalar), methods: list(scalar), notMethods: list(scalar) },
  {
    hosts: 'hosts is not supported (a meshwork inbound() serves one service)',
    notHosts: 'notHosts is not supported',
    ports: 'ports is not supported',
    notPorts: 'notPorts is not supported',
  },
);

const authorizationRule = obj(
  { from: list(obj({ source })), to: list(obj({ operation })) },
  { when: 'when conditions are not supported' },
);

/** An AuthorizationPolicy action meshwork enforces (ALLOW, DENY); the others are reported. */
const authorizationAction: Handler = (v, path, cx) => {
  if (v === 'ALLOW' || v === 'DENY') return v;
  problem(
    cx,
    path,
    v === 'CUSTOM'
      ? 'CUSTOM (external authorization) is not supported; non-strict: enforced as a DENY of its rules'
      : v === 'AUDIT'
        ? 'AUDIT is not supported (it decides nothing); non-strict: the policy is left out'
        : `${show(v)} is not one of ALLOW, DENY; non-strict: enforced as a DENY of its rules`,
  );
  return SKIP;
};

const POLICY_FIELDS = new Set(['action', 'rules', 'selector']);
const POLICY_UNSUPPORTED: Record<string, string> = {
  targetRef: 'targetRef is not supported',
  targetRefs: 'targetRefs is not supported',
  provider: 'provider (CUSTOM action) is not supported',
};

/**
 * One AuthorizationPolicy spec, rule by rule, failing closed when something cannot be carried
 * (non-strict mode): an ALLOW rule with an unsupported part is left out (it allows less), a
 * DENY rule with one matches every request (it denies more), a CUSTOM policy becomes a DENY of
 * its rules, an AUDIT policy is left out (it decides nothing). Returns undefined to leave the
 * policy out.
 */
function authorizationPolicy(
  spec: Record<string, unknown>,
  name: string,
  cx: Cx,
): Record<string, unknown> | undefined {
  for (const [k, v] of Object.entries(spec)) {
    if (v === null || v === undefined || POLICY_FIELDS.has(k)) continue;
    if (OBJECT_MEMBERS.has(k)) builtinKey(cx, `spec.${k}`);
    else {
      const reason = Object.hasOwn(POLICY_UNSUPPORTED, k) ? POLICY_UNSUPPORTED[k] : 'is not supported';
      problem(cx, `spec.${k}`, `${reason} (value ${show(v)})`);
    }
  }
  let action: 'ALLOW' | 'DENY' = 'ALLOW';
  if (spec.action !== undefined && spec.action !== null) {
    const a = authorizationAction(spec.action, 'spec.action', cx);
    if (a === SKIP && spec.action === 'AUDIT') return undefined;
    action = a === SKIP ? 'DENY' : (a as 'ALLOW' | 'DENY');
  }
  const policy: Record<string, unknown> = { name, action };
  if (spec.rules === undefined || spec.rules === null) return policy;
  if (!Array.isArray(spec.rules)) {
    problem(cx, 'spec.rules', `expected a list, got ${show(spec.rules)}`);
    policy.rules = action === 'DENY' ? [{}] : [];
    return policy;
  }
  const rules: unknown[] = [];
  spec.rules.forEach((rule, i) => {
    const before = cx.problems.length;
    const r = authorizationRule(rule, `spec.rules[${i}]`, cx);
    if (cx.problems.length === before && r !== SKIP) rules.push(r);
    else {
      const consequence =
        action === 'ALLOW'
          ? 'non-strict: this ALLOW rule is left out'
          : 'non-strict: this DENY rule matches every request';
      for (let j = before; j < cx.problems.length; j++) {
        const p = cx.problems[j] as IstioProblem;
        cx.problems[j] = { path: p.path, message: `${p.message}; ${consequence}` };
      }
      if (action === 'DENY') rules.push({});
    }
  });
  policy.rules = rules;
  return policy;
}

/**
 * Does the policy apply to this workload? Yes with no selector (namespace-wide) or a selector
 * whose matchLabels all match `labels`; no when they do not; unknown (reported) without
 * `labels` or with a selector other than matchLabels.
 */
function selects(
  selector: unknown,
  labels: Record<string, string> | undefined,
  cx: Cx,
): 'yes' | 'no' | 'unknown' {
  if (selector === undefined || selector === null) return 'yes';
  const match = isObject(selector) ? selector.matchLabels : undefined;
  if (!isObject(selector) || Object.keys(selector).some((k) => k !== 'matchLabels') || !isObject(match)) {
    problem(
      cx,
      'spec.selector',
      `only matchLabels is supported (value ${show(selector)})${UNKNOWN_SELECTOR}`,
    );
    return 'unknown';
  }
  if (labels === undefined) {
    problem(
      cx,
      'spec.selector',
      `selects workloads ${show(match)}: pass fromIstio(yaml, { workloadLabels }) with this service's labels${UNKNOWN_SELECTOR}`,
    );
    return 'unknown';
  }
  return Object.entries(match).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === String(v))
    ? 'yes'
    : 'no';
}

/**
 * Non-strict mode, when it is unknown whether a policy applies here: a DENY is kept (it can only
 * refuse more), an ALLOW is kept with no rules (it allows nothing, but its presence means requests
 * no other ALLOW policy matches are refused): both fail closed.
 */
const UNKNOWN_SELECTOR = '; non-strict: a DENY policy is kept, an ALLOW policy is kept allowing nothing';

interface Doc {
  value: Record<string, unknown>;
  where: string;
}

/** `spec.subsets[0].labels`, as the conversion writes paths. */
function joinPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out;
}

function parseDocs(input: string | readonly string[]): Doc[] {
  const texts = typeof input === 'string' ? [input] : input;
  const docs: Doc[] = [];
  texts.forEach((text, t) => {
    const file = typeof input === 'string' ? '' : `yaml[${t}] `;
    parseAllDocuments(text).forEach((d, i) => {
      const where = `${file}document ${i + 1}`;
      if (d.errors.length > 0) {
        throw new MeshworkConfigError([
          { path: `fromIstio ${where}`, message: `is not valid YAML (${d.errors[0]?.message})` },
        ]);
      }
      let value: unknown;
      try {
        value = d.toJS();
      } catch (err) {
        // An alias to a missing anchor, or an alias bomb (yaml's maxAliasCount).
        throw new MeshworkConfigError([
          { path: `fromIstio ${where}`, message: `is not valid YAML (${(err as Error).message})` },
        ]);
      }
      if (value === null || value === undefined) return;
      const reserved = protoKeyPaths(value);
      if (reserved.length > 0) {
        throw new MeshworkConfigError(
          reserved.map((p) => ({ path: `fromIstio ${where} ${joinPath(p)}`, message: PROTO_KEY_MESSAGE })),
        );
      }
      if (!isObject(value)) {
        throw new MeshworkConfigError([
          { path: `fromIstio ${where}`, message: `is not a mapping (got ${show(value)})` },
        ]);
      }
      if (typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
        value.items.forEach((item, j) => {
          if (isObject(item)) docs.push({ value: item, where: `${where} items[${j}]` });
        });
      } else {
        docs.push({ value, where });
      }
    });
  });
  return docs;
}

/** Converts Istio YAML (one string with `---` separators, or several) into meshwork services. */
export function fromIstio(yaml: string | readonly string[], options: FromIstioOptions = {}): FromIstioResult {
  const strict = options.strict !== false;
  const problems: IstioProblem[] = [];
  const invalidInput: ConfigIssue[] = [];
  // A Map: hosts are user-given names (`constructor` is a valid one), never looked up on an object.
  const services = new Map<string, ConvertedService>();
  const owners = new Map<string, string>();
  const policies: Record<string, unknown>[] = [];

  for (const { value, where } of parseDocs(yaml)) {
    const kind = value.kind;
    const metadata = isObject(value.metadata) ? value.metadata : {};
    const name = typeof metadata.name === 'string' ? metadata.name : undefined;
    const label = `${String(kind)}/${name ?? `(${where})`}`;
    const networking =
      API_VERSIONS.has(String(value.apiVersion)) && (kind === 'VirtualService' || kind === 'DestinationRule');
    const security = SECURITY_API_VERSIONS.has(String(value.apiVersion)) && kind === 'AuthorizationPolicy';
    if (!networking && !security) {
      problems.push({
        path: `${where}`,
        message: `${show(value.apiVersion)} ${show(kind)} is not supported (only networking.istio.io v1, v1beta1, v1alpha3 VirtualService and DestinationRule, and security.istio.io v1, v1beta1 AuthorizationPolicy)`,
      });
      continue;
    }
    const docNamespace = typeof metadata.namespace === 'string' ? metadata.namespace : undefined;
    const cx: Cx = {
      label,
      namespace: docNamespace ?? options.namespace ?? 'default',
      fqdn: options.fqdn === true,
      pinnedNamespace: options.namespace,
      problems,
      invalid: invalidInput,
    };
    for (const key of Object.keys(value)) {
      if (OBJECT_MEMBERS.has(key)) builtinKey(cx, key);
      else if (!TOP_LEVEL.has(key)) problem(cx, key, `is not supported (value ${show(value[key])})`);
    }
    if (!isObject(value.spec)) {
      problem(cx, 'spec', 'is missing');
      continue;
    }
    if (kind === 'AuthorizationPolicy') {
      // Istio: an empty spec is an ALLOW policy that matches nothing (it denies everything).
      const applies = selects(value.spec.selector, options.workloadLabels, cx);
      if (applies === 'no') continue;
      const policy = authorizationPolicy(value.spec, name ?? label, cx);
      if (policy && applies === 'unknown' && policy.action === 'ALLOW') policy.rules = [];
      if (policy) policies.push(policy);
    } else if (kind === 'VirtualService') {
      const spec = virtualServiceSpec(value.spec, 'spec', cx) as Record<string, unknown>;
      const hosts = (spec.hosts as string[] | undefined) ?? [];
      if (!Array.isArray(value.spec.hosts) || value.spec.hosts.length === 0) {
        problem(cx, 'spec.hosts', 'is missing or empty');
      }
      for (const host of hosts) {
        const key = `vs:${host}`;
        const first = owners.get(key);
        if (first !== undefined) {
          problem(
            cx,
            'spec.hosts',
            `host "${host}" already has ${first}; Istio would apply only one of them`,
          );
          continue;
        }
        owners.set(key, label);
        if (spec.http !== undefined) {
          services.set(host, {
            ...services.get(host),
            http: structuredClone(spec.http as Record<string, unknown>[]),
          });
        }
      }
    } else {
      const spec = destinationRuleSpec(value.spec, 'spec', cx) as Record<string, unknown>;
      const host = spec.host as string | undefined;
      if (host === undefined) {
        if (value.spec.host === undefined) problem(cx, 'spec.host', 'is missing');
        continue;
      }
      const key = `dr:${host}`;
      const first = owners.get(key);
      if (first !== undefined) {
        problem(cx, 'spec.host', `host "${host}" already has ${first}; Istio would apply only one of them`);
        continue;
      }
      owners.set(key, label);
      const svc: ConvertedService = services.get(host) ?? {};
      services.set(host, svc);
      if (spec.subsets !== undefined) svc.subsets = spec.subsets as Record<string, unknown>[];
      if (spec.trafficPolicy !== undefined && Object.keys(spec.trafficPolicy as object).length > 0) {
        svc.trafficPolicy = spec.trafficPolicy as Record<string, unknown>;
      }
    }
  }

  if (invalidInput.length > 0) throw new MeshworkConfigError(invalidInput);
  if (problems.length > 0 && strict) throw new IstioUnsupportedError(problems);
  const warnings = problems.map((p) => `fromIstio: skipped ${formatProblem(p)}`);
  if (options.warn) for (const w of warnings) options.warn(w);
  // Object.fromEntries defines each host as an own key (never through a setter).
  const result = { services: Object.fromEntries(services) } as FromIstioResult;
  if (policies.length > 0) result.authorization = { policies };
  Object.defineProperty(result, 'warnings', { value: Object.freeze(warnings), enumerable: false });
  return result;
}
