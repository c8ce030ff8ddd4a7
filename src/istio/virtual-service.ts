/** VirtualService (networking.istio.io): the tables of its fields, as fromIstio reads them. */
import { mapHost } from './hosts.ts';
import {
  type Cx,
  custom,
  type Handler,
  isObject,
  list,
  obj,
  problem,
  record,
  SKIP,
  scalar,
  show,
} from './walk.ts';

/** `gateways` / `exportTo` are accepted only with the value that means "the mesh, everywhere". */
export function onlyDefault(defaults: string, reason: string): Handler {
  return custom(`only ${JSON.stringify([defaults])} is accepted`, (v, path, cx) => {
    if (Array.isArray(v) && v.every((x) => x === defaults)) return SKIP;
    problem(cx, path, `${reason} (value ${show(v)})`);
    return SKIP;
  });
}

const stringMatch = obj({ exact: scalar, prefix: scalar, regex: scalar });

export const match = obj(
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
  ['gateways'],
);

export const destination = obj({ host: mapHost, subset: scalar, port: obj({ number: scalar }) });

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
  const inner = obj({ ...fields, percentage: obj({ value: scalar }), percent: scalar }, unsupported, [
    'percent',
  ]);
  return custom(
    `needs ${required}`,
    (v, path, cx) => {
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
    },
    inner,
  );
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
  ['mirrorPercent'],
);

export const httpRoute: Handler = custom(
  'an HTTP route',
  (v, path, cx) => {
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
  },
  httpRouteFields,
);

export const virtualServiceSpec = obj(
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
  ['gateways', 'exportTo'],
);
