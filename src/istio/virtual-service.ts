/** VirtualService (networking.istio.io): the tables of its fields, as fromIstio reads them. */
import { expandDelegate } from './delegate.ts';
import { mapHost } from './hosts.ts';
import { MESH_GATEWAY, scopeField } from './scope.ts';
import {
  type Cx,
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
 * A route or match block that does not apply to this workload's in-mesh calls (bound to gateways
 * only, or to other source labels or namespaces): left out, and not a problem.
 */
const NOT_HERE = Symbol('not-mesh');

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
    scheme: stringMatch,
    method: stringMatch,
    headers: headerMatches('headers'),
    withoutHeaders: headerMatches('withoutHeaders'),
    queryParams: record(stringMatch),
    ignoreUriCase: scalar,
    port: scalar,
    sourceLabels: record(scalar),
    authority: custom('matched as the `host` header (the request authority)', () => SKIP, stringMatch),
    gateways: scopeField('the block applies to in-mesh calls only when the list has "mesh"'),
    sourceNamespace: scopeField("the block applies only when it names this workload's namespace"),
    statPrefix: ignored(
      "names Envoy's route statistics; meshwork's metrics name routes by `name`",
      "names Envoy's route statistics; meshwork's metrics name routes by `name`: ignored",
    ),
  },
  {},
  ['authority', 'gateways', 'sourceNamespace', 'statPrefix'],
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
    if (!applies || !isObject(v)) return applies ? matchFields(v, path, cx) : NOT_HERE;
    // The caller is this workload: its namespace and (when given) labels decide the block now.
    const ns = v.sourceNamespace;
    if (ns !== undefined && ns !== null) {
      if (typeof ns !== 'string') {
        problem(cx, `${path}.sourceNamespace`, `expected a namespace name, got ${show(ns)}`);
        return SKIP;
      }
      if (ns !== cx.here) return NOT_HERE;
    }
    const out = matchFields(v, path, cx);
    if (out === SKIP || !isObject(out)) return out;
    if (isObject(out.sourceLabels) && cx.workloadLabels !== undefined) {
      const own = cx.workloadLabels;
      const selected = Object.entries(out.sourceLabels).every(
        ([k, x]) => Object.hasOwn(own, k) && own[k] === String(x),
      );
      if (!selected) return NOT_HERE;
      delete out.sourceLabels;
    }
    if (v.authority !== undefined && v.authority !== null) {
      const authority = stringMatch(v.authority, `${path}.authority`, cx);
      if (authority !== SKIP) {
        const headers = (isObject(out.headers) ? out.headers : {}) as Record<string, unknown>;
        if (Object.hasOwn(headers, 'host')) {
          problem(cx, `${path}.authority`, 'is set together with a host (or :authority) header condition');
        } else {
          headers.host = authority;
          out.headers = headers;
        }
      }
    }
    return out;
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
    note(
      cx,
      `${path}.percentage`,
      'is missing: Istio then injects nothing (istio/istio#36303), and so does meshwork (percentage 0); set percentage.value to inject',
    );
    out.percentage = { value: 0 };
  }
}

/**
 * A fault's delay or abort. One of `kinds` must be set; a kind Istio itself drops (an exponential
 * delay, an http2Error abort: "not yet supported" in Istio's translation, which then injects
 * nothing of it) is ignored here too, with a warning.
 */
function faultPart(
  kinds: Record<string, Handler>,
  dropped: Record<string, string>,
  legacyPercent: boolean,
): Handler {
  const droppedFields = Object.fromEntries(
    Object.entries(dropped).map(([k, why]) => [
      k,
      ignored(why, `${why}: this part of the fault is left out, as Istio does`),
    ]),
  );
  // Only the delay keeps Istio's deprecated integer `percent` in the API.
  const legacy: Record<string, Handler> = legacyPercent ? { percent: scalar } : {};
  const inner = obj({ ...kinds, ...droppedFields, percentage: obj({ value: scalar }), ...legacy }, {}, [
    'percent',
  ]);
  const names = Object.keys(kinds);
  return custom(
    `needs ${names.join(' or ')}`,
    (v, path, cx) => {
      const out = inner(v, path, cx);
      if (out === SKIP || !isObject(v) || !isObject(out)) return out;
      if (!names.some((k) => out[k] !== undefined)) {
        if (!Object.keys(v).some((k) => Object.hasOwn(dropped, k)))
          problem(cx, `${path}.${names[0]}`, 'is missing');
        return SKIP;
      }
      percentField(v, out, path, cx);
      return out;
    },
    inner,
  );
}

const faultFields = obj({
  delay: faultPart(
    { fixedDelay: scalar },
    { exponentialDelay: 'exponentialDelay is not supported by Istio either' },
    true,
  ),
  abort: faultPart(
    { httpStatus: scalar, grpcStatus: scalar },
    { http2Error: 'http2Error aborts are not supported by Istio either' },
    false,
  ),
});

/** A fault whose every part Istio drops injects nothing: left out. */
const fault: Handler = custom(
  'delay and abort, drawn independently',
  (v, path, cx) => {
    const out = faultFields(v, path, cx);
    return isObject(out) && Object.keys(out).length === 0 ? SKIP : out;
  },
  faultFields,
);

const retries = obj({
  attempts: scalar,
  perTryTimeout: scalar,
  retryOn: scalar,
  retryRemoteLocalities: scalar,
  retryIgnorePreviousHosts: scalar,
  backoff: scalar,
});

/**
 * `route`: Istio's weights are relative (1 and 1 is 50/50; "a destination will receive
 * weight/(sum of all weights) requests"), scaled here to the percentages meshwork's schema takes.
 */
const routeList: Handler = custom(
  'weights are relative, scaled to percentages',
  (v, path, cx) => {
    const out = list(routeDestination)(v, path, cx);
    if (!Array.isArray(out)) return out;
    const weights = out.map((d) => (isObject(d) && typeof d.weight === 'number' ? d.weight : undefined));
    if (weights.every((w) => w === undefined)) return out;
    const sum = weights.reduce<number>((a, w) => a + (w ?? 0), 0);
    if (!(sum > 0)) {
      problem(cx, path, `weights sum to ${sum}: no destination would get any request`);
      return SKIP;
    }
    if (sum === 100) return out;
    out.forEach((d, i) => {
      if (isObject(d)) d.weight = ((weights[i] ?? 0) * 100) / sum;
    });
    return out;
  },
  list(routeDestination),
);

const corsFields = obj(
  {
    allowOrigins: list(stringMatch),
    allowOrigin: custom('deprecated: each entry becomes an exact allowOrigins entry', () => SKIP),
    allowMethods: list(scalar),
    allowHeaders: list(scalar),
    exposeHeaders: list(scalar),
    maxAge: scalar,
    allowCredentials: scalar,
    unmatchedPreflights: scalar,
  },
  {},
  ['allowOrigin'],
);

/** corsPolicy; the deprecated `allowOrigin` strings are exact origins (`*` is any), as Istio reads them. */
const corsPolicy: Handler = custom(
  'enforced as the client sidecar does',
  (v, path, cx) => {
    const out = corsFields(v, path, cx);
    if (!isObject(v) || !isObject(out)) return out;
    const legacy = v.allowOrigin;
    if (legacy !== undefined && legacy !== null) {
      if (!Array.isArray(legacy) || !legacy.every((o) => typeof o === 'string')) {
        problem(cx, `${path}.allowOrigin`, `expected a list of origins, got ${show(legacy)}`);
      } else {
        note(cx, `${path}.allowOrigin`, 'is deprecated in Istio (use allowOrigins); read as exact origins');
        out.allowOrigins = [
          ...((out.allowOrigins as unknown[] | undefined) ?? []),
          ...legacy.map((exact) => ({ exact })),
        ];
      }
    }
    return out;
  },
  corsFields,
);

const httpRouteFields = obj(
  {
    name: scalar,
    match: list(match),
    route: routeList,
    redirect: obj({
      uri: scalar,
      authority: scalar,
      port: scalar,
      derivePort: scalar,
      scheme: scalar,
      redirectCode: scalar,
      prefixRewrite: scalar,
    }),
    directResponse: obj({ status: scalar, body: obj({ string: scalar, bytes: scalar }) }),
    headers,
    rewrite: obj({
      uri: scalar,
      authority: scalar,
      uriRegexRewrite: obj({ match: scalar, rewrite: scalar }),
    }),
    timeout: scalar,
    retries,
    fault,
    mirror: destination,
    mirrorPercentage: obj({ value: scalar }),
    mirrorPercent: scalar,
    mirrors: list(obj({ destination, percentage: obj({ value: scalar }) })),
    corsPolicy,
    delegate: custom(
      "replaced by the delegate VirtualService's routes, with this route's match merged in (Istio's merge; one level)",
      () => SKIP,
      obj({ name: scalar, namespace: scalar }),
    ),
    websocketUpgrade: custom(
      'removed from Istio (upgrades are always allowed): accepted with a warning',
      () => SKIP,
    ),
  },
  {},
  ['mirrorPercent', 'websocketUpgrade', 'delegate'],
);

/** One HTTP route; NOT_HERE when it applies to gateway traffic only. */
const httpRoute: Handler = custom(
  'an HTTP route',
  (v, path, cx) => {
    const blocks = isObject(v) && Array.isArray(v.match) ? v.match : [];
    // A route without match blocks applies where the VirtualService's gateways say.
    if (blocks.length === 0 && !cx.meshDefault) return NOT_HERE;
    const out = httpRouteFields(v, path, cx);
    if (out === SKIP) return out;
    const r = out as Record<string, unknown>;
    if (r.mirrorPercentage === undefined && typeof r.mirrorPercent === 'number') {
      r.mirrorPercentage = { value: r.mirrorPercent };
    }
    delete r.mirrorPercent;
    if (isObject(v) && v.websocketUpgrade !== undefined && v.websocketUpgrade !== null) {
      note(
        cx,
        `${path}.websocketUpgrade`,
        'was removed from Istio (WebSocket upgrades are always allowed, as in meshwork): ignored',
      );
    }
    if (blocks.length > 0) {
      const converted = (r.match as unknown[] | undefined) ?? [];
      const kept = converted.filter((b) => b !== NOT_HERE);
      if (kept.length === 0) {
        // Every block is bound to gateways only: the route is not part of in-mesh routing.
        if (converted.length === blocks.length) return NOT_HERE;
        problem(cx, `${path}.match`, 'lost every match block to skipped fields, so the route is left out');
        return SKIP;
      }
      r.match = kept;
    }
    if (r.route === undefined && r.redirect === undefined && r.directResponse === undefined) {
      problem(cx, path, 'has no route, redirect or directResponse (delegate routes are not supported)');
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
    let catchAll: string | undefined;
    const take = (raw: unknown, at: string) => {
      const r = httpRoute(raw, at, cx);
      if (r === SKIP || r === NOT_HERE) return;
      if (catchAll !== undefined) {
        note(
          cx,
          at,
          `can never match: ${catchAll} has no match and takes every request (Istio accepts this and never reaches it); left out`,
        );
        return;
      }
      const m = (r as Record<string, unknown>).match as unknown[] | undefined;
      if (m === undefined || m.length === 0) catchAll = at;
      out.push(r);
    };
    v.forEach((raw, i) => {
      const at = `${path}[${i}]`;
      if (!isObject(raw) || raw.delegate === undefined || raw.delegate === null) {
        take(raw, at);
        return;
      }
      // A delegating route stands for the delegate VirtualService's routes, merged (Istio).
      const expanded = expandDelegate(raw, cx.namespace, cx.delegates);
      if (typeof expanded === 'string') {
        problem(cx, `${at}.delegate`, expanded);
        return;
      }
      for (const d of expanded.dropped) note(cx, at, `${d}; left out`);
      for (const e of expanded.routes) take(e.route, `${at} (${e.from})`);
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
