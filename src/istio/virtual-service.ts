/** VirtualService (networking.istio.io): the tables of its fields, as fromIstio reads them. */
import { mapHost } from './hosts.ts';
import { MESH_GATEWAY, scopeField } from './scope.ts';
import {
  type Cx,
  custom,
  type Handler,
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

/** A route or match block bound to gateways only: not part of in-mesh routing (and not a problem). */
const NOT_MESH = Symbol('not-mesh');

const stringMatch = obj({ exact: scalar, prefix: scalar, regex: scalar });

const JWT_CLAIM = '@request.auth.claims.';

/**
 * Header names of a match, as Envoy reads them: `:authority` is the `host` header meshwork
 * matches, `@request.auth.claims.*` (JWT claims) is refused, other pseudo-headers too.
 */
function headerMatches(what: string): Handler {
  const item = record(stringMatch);
  return custom(
    `${what}: \`:authority\` is read as \`host\`; JWT claims (\`@request.auth.claims.*\`) are refused`,
    (v, path, cx) => {
      if (!isObject(v)) return item(v, path, cx);
      const renamed: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (k.startsWith(JWT_CLAIM)) {
          problem(
            cx,
            `${path}.${k}`,
            'matches a JWT claim: meshwork has no RequestAuthentication (it does not validate JWTs on outbound calls), so the claim cannot be trusted; match a header set by your gateway instead',
          );
          continue;
        }
        const lower = k.toLowerCase();
        const name = lower === ':authority' ? 'host' : lower;
        if (name.startsWith(':')) {
          problem(
            cx,
            `${path}.${k}`,
            `is a pseudo-header meshwork does not match on (only :authority, read as host); use ${name === ':method' ? 'method' : name === ':path' ? 'uri' : 'uri or method'}`,
          );
          continue;
        }
        if (Object.hasOwn(renamed, name)) {
          problem(cx, `${path}.${k}`, `names the same header as another condition (${name})`);
          continue;
        }
        renamed[name] = x;
      }
      if (Object.keys(renamed).length === 0 && Object.keys(v).length > 0) return SKIP;
      return item(renamed, path, cx);
    },
    item,
  );
}

const matchFields = obj(
  {
    name: scalar,
    uri: stringMatch,
    method: stringMatch,
    headers: headerMatches('headers'),
    withoutHeaders: headerMatches('withoutHeaders'),
    queryParams: record(stringMatch),
    ignoreUriCase: scalar,
    gateways: scopeField('the block applies to in-mesh calls only when the list has "mesh"'),
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

/**
 * One match block. Its own `gateways` override the VirtualService's (Istio): a block whose
 * gateways leave out `mesh` is not part of in-mesh routing.
 */
export const match: Handler = custom(
  'one match block; its `gateways` decide whether it applies to in-mesh calls',
  (v, path, cx) => {
    const gateways = isObject(v) ? v.gateways : undefined;
    if (
      gateways !== undefined &&
      gateways !== null &&
      !(Array.isArray(gateways) && gateways.every((g) => typeof g === 'string'))
    ) {
      problem(cx, `${path}.gateways`, `expected a list of gateway names, got ${show(gateways)}`);
      return SKIP;
    }
    const applies =
      gateways === undefined || gateways === null
        ? cx.meshDefault
        : Array.isArray(gateways) && gateways.includes(MESH_GATEWAY);
    if (!applies) return NOT_MESH;
    return matchFields(v, path, cx);
  },
  matchFields,
);

export const destination = obj({ host: mapHost, subset: scalar, port: obj({ number: scalar }) });

/**
 * Header operations. `:authority` (and `Host`) may be set or added, as Istio allows: it is the
 * `host` header meshwork sends. Other pseudo-headers are refused, as Istio's validation does.
 */
function headerEdits(): Handler {
  const values = record(scalar);
  const names = (v: unknown, path: string, cx: Cx): unknown => {
    if (!isObject(v)) return values(v, path, cx);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const lower = k.toLowerCase();
      const name = lower === ':authority' ? 'host' : k;
      if (name.startsWith(':')) {
        problem(
          cx,
          `${path}.${k}`,
          'is a pseudo-header; only :authority may be set (Istio refuses the others)',
        );
        continue;
      }
      out[name] = x;
    }
    return values(out, path, cx);
  };
  const set = custom('`:authority` is the `host` header', names, values);
  const add = custom('`:authority` is the `host` header', names, values);
  const remove = custom(
    'names to remove; pseudo-headers are refused',
    (v, path, cx) => {
      if (Array.isArray(v)) {
        const bad = v.findIndex((x) => typeof x === 'string' && x.startsWith(':'));
        if (bad >= 0) {
          problem(cx, `${path}[${bad}]`, 'is a pseudo-header, which cannot be removed (Istio refuses it)');
          return list(scalar)(
            v.filter((x) => !(typeof x === 'string' && x.startsWith(':'))),
            path,
            cx,
          );
        }
      }
      return list(scalar)(v, path, cx);
    },
    list(scalar),
  );
  return obj({ set, add, remove });
}

const headerOps = headerEdits();
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

/** One HTTP route; NOT_MESH when it applies to gateway traffic only. */
const httpRoute: Handler = custom(
  'an HTTP route',
  (v, path, cx) => {
    const blocks = isObject(v) && Array.isArray(v.match) ? v.match : [];
    // A route without match blocks applies where the VirtualService's gateways say.
    if (blocks.length === 0 && !cx.meshDefault) return NOT_MESH;
    const out = httpRouteFields(v, path, cx);
    if (out === SKIP) return out;
    const r = out as Record<string, unknown>;
    if (r.mirrorPercentage === undefined && typeof r.mirrorPercent === 'number') {
      r.mirrorPercentage = { value: r.mirrorPercent };
    }
    delete r.mirrorPercent;
    if (blocks.length > 0) {
      const converted = (r.match as unknown[] | undefined) ?? [];
      const kept = converted.filter((b) => b !== NOT_MESH);
      if (kept.length === 0) {
        // Every block is bound to gateways only: the route is not part of in-mesh routing.
        if (converted.length === blocks.length) return NOT_MESH;
        problem(cx, `${path}.match`, 'lost every match block to skipped fields, so the route is left out');
        return SKIP;
      }
      r.match = kept;
    }
    if (r.route === undefined) {
      problem(cx, path, 'has no route (redirect, directResponse and delegate routes are not supported)');
      return SKIP;
    }
    return r;
  },
  httpRouteFields,
);

/**
 * The ordered `http` list. Routes bound to gateways only are left out; a route without match
 * blocks takes every request, so the routes after it can never match: Istio accepts that, and so
 * does fromIstio, leaving them out with a note.
 */
const httpRoutes: Handler = custom(
  'routes in order; gateway-only routes and routes after a catch-all are left out',
  (v, path, cx) => {
    if (!Array.isArray(v)) {
      problem(cx, path, `expected a list, got ${show(v)}`);
      return SKIP;
    }
    const out: unknown[] = [];
    let catchAll: number | undefined;
    v.forEach((raw, i) => {
      const r = httpRoute(raw, `${path}[${i}]`, cx);
      if (r === SKIP || r === NOT_MESH) return;
      if (catchAll !== undefined) {
        note(
          cx,
          `${path}[${i}]`,
          `can never match: ${path}[${catchAll}] has no match and takes every request (Istio accepts this and never reaches it); left out`,
        );
        return;
      }
      const m = (r as Record<string, unknown>).match as unknown[] | undefined;
      if (m === undefined || m.length === 0) catchAll = i;
      out.push(r);
    });
    return out;
  },
  list(httpRoute),
);

export const virtualServiceSpec = obj(
  {
    hosts: list(mapHost),
    http: httpRoutes,
    gateways: scopeField('routes apply to in-mesh calls when the list is empty or has "mesh"'),
    exportTo: scopeField('the VirtualService is left out unless it is exported to this namespace'),
  },
  {
    tcp: 'tcp routes are not supported (meshwork routes HTTP)',
    tls: 'tls (SNI) routes are not supported (meshwork routes HTTP)',
  },
  ['gateways', 'exportTo'],
);
