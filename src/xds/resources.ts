/**
 * Envoy v3 resources → meshwork's model, one resource at a time, with Envoy's HTTP semantics.
 * Each resource either becomes a model (meshwork config fragments in createMesh's input form,
 * checked here with meshwork's own schemas) or is refused with the reasons, each naming the
 * field: a refused resource is NACKed and the last good one keeps serving. What meshwork leaves
 * out on purpose (it never widens a rule) is kept as a warning on the resource.
 *
 *   LDS: api_listener → HttpConnectionManager (rds or inline route_config; http_filters fault,
 *        router, optional others skipped).
 *   RDS: virtual hosts, routes (match, action, retries, timeouts, hash policy, headers, rewrites,
 *        mirrors, per-route fault) → `http` routes whose destinations name clusters.
 *   CDS: EDS/STATIC/DNS clusters, load-balancing policy, outlier detection, circuit breakers,
 *        connect timeout, upstream TLS → `trafficPolicy`.
 *   EDS: localities, priorities, weights, health → endpoints.
 */

import { formatIssues } from '../config/load.ts';
import { trafficPolicySchema } from '../config/schema.ts';
import type { EndpointSpec } from '../discovery/types.ts';
import { faultSchema } from '../fault/schema.ts';
import { httpRouteSchema } from '../routing/schema.ts';
import type { Bootstrap } from './bootstrap.ts';
import { type AnyMessage, type Codec, typeUrlName } from './codec.ts';
import {
  arr,
  durationMs,
  escapeRegex,
  fractionPercent,
  isObj,
  num,
  type Obj,
  obj,
  Problems,
  show,
  str,
  wrapped,
  wrappedBool,
} from './values.ts';

export const RESOURCE_TYPES = {
  listener: 'envoy.config.listener.v3.Listener',
  route: 'envoy.config.route.v3.RouteConfiguration',
  cluster: 'envoy.config.cluster.v3.Cluster',
  endpoint: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const;

export type Kind = keyof typeof RESOURCE_TYPES;
export const KINDS = Object.keys(RESOURCE_TYPES) as Kind[];

export const typeUrlOf = (kind: Kind): string => `type.googleapis.com/${RESOURCE_TYPES[kind]}`;
export const kindOfTypeUrl = (url: string): Kind | undefined =>
  KINDS.find((k) => RESOURCE_TYPES[k] === typeUrlName(url));

const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'envoy.extensions.filters.http.router.v3.Router';
const FAULT = 'envoy.extensions.filters.http.fault.v3.HTTPFault';
const FILTER_CONFIG = 'envoy.config.route.v3.FilterConfig';
const TYPED_STRUCTS = ['xds.type.v3.TypedStruct', 'udpa.type.v1.TypedStruct'];
const UPSTREAM_TLS = 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const LB = 'envoy.extensions.load_balancing_policies';

/** A meshwork config fragment, in createMesh's input form. */
export type Fragment = Record<string, unknown>;

// ---- models -------------------------------------------------------------------------------------

export interface ListenerModel {
  name: string;
  /** The RouteConfiguration to subscribe to (RDS), or the inline one. */
  rds?: string | undefined;
  inline?: RouteConfigModel | undefined;
  /** The name of the fault filter in http_filters, when there is one (per-route faults need it). */
  faultFilter?: string | undefined;
  /** The fault filter's own configuration (applies where a route has none). */
  fault?: Fragment | undefined;
  /** HCM common_http_protocol_options.max_stream_duration (0 / unset = none). */
  maxStreamDurationMs?: number | undefined;
}

export interface RouteConfigModel {
  name: string;
  virtualHosts: VirtualHostModel[];
}

export interface VirtualHostModel {
  name: string;
  domains: string[];
  routes: RouteModel[];
}

/** The placeholder host of cluster `i` of a route, replaced by the cluster's service name. */
export const clusterRef = (i: number): string => `xds-cluster-ref-${i}`;
export const CLUSTER_REF = /^xds-cluster-ref-(\d+)$/;

export interface RouteModel {
  /** The meshwork route (input form); destination hosts are clusterRef(i) into `clusters`. */
  http: Fragment;
  clusters: string[];
  /** The route's hash policy, as a consistentHash key (applies when the cluster hashes). */
  hash?: Fragment | undefined;
  /** RouteAction.timeout: undefined = unset (Envoy's default, 15 s), 0 = none. */
  timeoutMs?: number | undefined;
  /** RouteAction.max_stream_duration.max_stream_duration (unset = the listener's). */
  maxStreamDurationMs?: number | undefined;
  /** typed_per_filter_config fault configs by filter name (route over virtual host over route config); null = disabled. */
  faults: Map<string, Fragment | null>;
  /** cluster_header: the destination is the cluster this request header names. */
  clusterHeader?: string | undefined;
  /** A route answered locally (redirect, direct_response): no cluster. */
  local: boolean;
}

export type HashKind = { kind: 'ring'; minimumRingSize?: number } | { kind: 'maglev'; tableSize?: number };

export type ClusterDiscovery =
  | { kind: 'eds'; serviceName: string }
  | { kind: 'static'; endpoints: EndpointSpec[] }
  | { kind: 'dns'; host: string; port: number };

export interface ClusterModel {
  name: string;
  discovery: ClusterDiscovery;
  /** `trafficPolicy` (input form), without the consistent hash (it comes from routes). */
  trafficPolicy: Fragment;
  /** discovery.healthCheck from the cluster's HTTP health check. */
  healthCheck?: Fragment | undefined;
  /** The cluster hashes (RING_HASH, MAGLEV): routes' hash policies pick the endpoint. */
  hash?: HashKind | undefined;
  /** Locality weights are honoured (Envoy: locality_weighted_lb_config, or a wrr_locality policy). */
  localityWeighted: boolean;
}

export interface LocalityModel {
  zone?: string | undefined;
  region?: string | undefined;
  subZone?: string | undefined;
  weight: number;
  priority: number;
  endpoints: { host: string; port: number; weight: number; health: string }[];
}

export interface EndpointsModel {
  name: string;
  localities: LocalityModel[];
}

export type Model = ListenerModel | RouteConfigModel | ClusterModel | EndpointsModel;

export interface Decoded {
  name: string;
  model?: Model | undefined;
  errors: string[];
  warnings: string[];
}

export interface DecodeContext {
  codec: Codec;
  bootstrap: Bootstrap;
  /** The certificate provider instance that is the mesh identity (ISTIO_MUTUAL), if any. */
  identityProvider?: string | undefined;
}

/** Decodes and converts one resource of a DiscoveryResponse. */
export function decodeResource(kind: Kind, any: AnyMessage, ctx: DecodeContext): Decoded {
  const p = new Problems();
  const type = RESOURCE_TYPES[kind];
  if (typeUrlName(any.type_url) !== type) {
    return { name: '', errors: [`resource of type ${any.type_url} in a ${type} response`], warnings: [] };
  }
  let raw: Obj;
  try {
    raw = ctx.codec.decode(type, any.value ?? new Uint8Array());
  } catch (err) {
    return { name: '', errors: [`cannot be decoded as ${type}: ${(err as Error).message}`], warnings: [] };
  }
  const name = str(kind === 'endpoint' ? raw.cluster_name : raw.name) ?? '';
  if (name === '') return { name, errors: [`${type} without a name`], warnings: [] };
  let model: Model | undefined;
  switch (kind) {
    case 'listener':
      model = listener(name, raw, ctx, p);
      break;
    case 'route':
      model = routeConfiguration(name, raw, ctx, p, '');
      break;
    case 'cluster':
      model = cluster(name, raw, ctx, p);
      break;
    case 'endpoint':
      model = endpoints(name, raw, p);
      break;
  }
  const label = `${kind === 'endpoint' ? 'ClusterLoadAssignment' : type.split('.').pop()} "${name}"`;
  return {
    name,
    model: p.ok ? model : undefined,
    errors: p.errors.map((e) => `${label}: ${e}`),
    warnings: p.warnings.map((w) => `${label}: ${w}`),
  };
}

// ---- LDS ----------------------------------------------------------------------------------------

function listener(name: string, raw: Obj, ctx: DecodeContext, p: Problems): ListenerModel | undefined {
  const api = obj(obj(raw.api_listener)?.api_listener) as AnyMessage | undefined;
  if (!api) {
    p.error(
      'api_listener',
      'is missing: a client listener is an api_listener with an HttpConnectionManager (meshwork is not a proxy)',
    );
    return undefined;
  }
  if (typeUrlName(api.type_url) !== HCM) {
    p.error('api_listener.api_listener', `holds ${show(api.type_url)}, not an HttpConnectionManager`);
    return undefined;
  }
  const hcm = ctx.codec.unpack(api, HCM) as Obj;
  const model: ListenerModel = { name };
  const base = 'api_listener.http_connection_manager';
  // http_filters: fault and router; the router last; an unknown filter refuses the listener
  // unless it is marked optional (as gRPC and Envoy do).
  const filters = arr(hcm.http_filters);
  if (filters.length === 0) p.error(`${base}.http_filters`, 'is empty (the router filter is required)');
  filters.forEach((f, i) => {
    const path = `${base}.http_filters[${i}]`;
    const o = obj(f) ?? {};
    const fname = str(o.name) ?? '';
    const optional = o.is_optional === true;
    if (o.disabled === true) return;
    let tc = obj(o.typed_config) as AnyMessage | undefined;
    let type = typeUrlName(tc?.type_url);
    if (TYPED_STRUCTS.includes(type)) {
      const inner = ctx.codec.decode(type, tc?.value ?? new Uint8Array());
      type = typeUrlName(str(inner.type_url));
      tc = undefined;
    }
    if (o.config_discovery !== undefined) {
      if (!optional) p.error(`${path}.config_discovery`, 'is not supported (filter configuration discovery)');
      return;
    }
    if (type === ROUTER) {
      if (i !== filters.length - 1) p.error(path, 'the router filter must be the last filter');
      return;
    }
    if (type === FAULT) {
      model.faultFilter = fname;
      const cfg = tc ? (ctx.codec.unpack(tc, FAULT) as Obj) : {};
      model.fault = fault(cfg, `${path}.typed_config`, p);
      return;
    }
    if (optional)
      p.warn(path, `filter ${show(fname)} (${type || 'no type'}) is not supported and is optional: skipped`);
    else
      p.error(
        path,
        `filter ${show(fname)} (${type || 'no type'}) is not supported (meshwork runs fault and router); mark it is_optional to skip it`,
      );
  });
  if (filters.length > 0) {
    const last = obj(filters[filters.length - 1]) ?? {};
    const t = typeUrlName((obj(last.typed_config) as AnyMessage | undefined)?.type_url);
    if (t !== ROUTER && !TYPED_STRUCTS.includes(t))
      p.error(`${base}.http_filters`, 'does not end with the router filter');
  }
  if (hcm.scoped_routes !== undefined)
    p.error(`${base}.scoped_routes`, 'is not supported (use rds or route_config)');
  const rds = obj(hcm.rds);
  if (rds) {
    const rc = str(rds.route_config_name);
    if (!rc) p.error(`${base}.rds.route_config_name`, 'is empty');
    const src = obj(rds.config_source);
    if (src && src.ads === undefined && src.self === undefined)
      p.warn(
        `${base}.rds.config_source`,
        'is neither ads nor self: the route configuration is asked for over ADS',
      );
    model.rds = rc;
  } else if (isObj(hcm.route_config)) {
    const rc = hcm.route_config;
    model.inline = routeConfiguration(str(rc.name) ?? `${name}/inline`, rc, ctx, p, `${base}.route_config.`);
  } else if (hcm.scoped_routes === undefined) {
    p.error(base, 'has neither rds nor route_config');
  }
  const msd = durationMs(obj(hcm.common_http_protocol_options)?.max_stream_duration);
  if (msd !== undefined && msd > 0) model.maxStreamDurationMs = msd;
  return model;
}

/** HTTPFault → meshwork `fault` (input form); undefined when it injects nothing. */
function fault(f: Obj, path: string, p: Problems): Fragment | undefined {
  const out: Fragment = {};
  const delay = obj(f.delay);
  if (delay) {
    if (delay.header_delay !== undefined)
      p.warn(`${path}.delay.header_delay`, 'delays read from request headers are not supported: no delay');
    else {
      const ms = durationMs(delay.fixed_delay);
      const pct = fractionPercent(delay.percentage);
      // Envoy injects nothing without a percentage.
      if (ms !== undefined && pct !== undefined && pct > 0)
        out.delay = { fixedDelay: ms, percentage: { value: pct } };
    }
  }
  const abort = obj(f.abort);
  if (abort) {
    const pct = fractionPercent(abort.percentage);
    if (abort.header_abort !== undefined)
      p.warn(`${path}.abort.header_abort`, 'aborts read from request headers are not supported: no abort');
    else if (abort.grpc_status !== undefined)
      p.warn(`${path}.abort.grpc_status`, 'gRPC status aborts are not supported for HTTP: no abort');
    else if (pct !== undefined && pct > 0)
      out.abort = { httpStatus: num(abort.http_status) ?? 0, percentage: { value: pct } };
  }
  for (const k of [
    'max_active_faults',
    'response_rate_limit',
    'downstream_nodes',
    'upstream_cluster',
    'headers',
  ])
    if (f[k] !== undefined && !(Array.isArray(f[k]) && (f[k] as unknown[]).length === 0))
      p.warn(`${path}.${k}`, 'is not supported: ignored');
  if (out.delay === undefined && out.abort === undefined) return undefined;
  checkWith(faultSchema, out, `${path}`, p);
  return out;
}

// ---- RDS ----------------------------------------------------------------------------------------

interface HeaderLevel {
  request_headers_to_add?: unknown;
  request_headers_to_remove?: unknown;
  response_headers_to_add?: unknown;
  response_headers_to_remove?: unknown;
}

function routeConfiguration(
  name: string,
  raw: Obj,
  ctx: DecodeContext,
  p: Problems,
  prefix: string,
): RouteConfigModel {
  if (raw.vhds !== undefined) p.error(`${prefix}vhds`, 'is not supported (virtual host discovery)');
  const mostSpecificWins = raw.most_specific_header_mutations_wins === true;
  const configFaults = perFilterFaults(
    raw.typed_per_filter_config,
    `${prefix}typed_per_filter_config`,
    ctx,
    p,
  );
  const virtualHosts: VirtualHostModel[] = [];
  arr(raw.virtual_hosts).forEach((v, i) => {
    const vh = obj(v) ?? {};
    const vpath = `${prefix}virtual_hosts[${i}]`;
    const domains = arr(vh.domains).filter((d): d is string => typeof d === 'string');
    if (domains.length === 0) p.error(`${vpath}.domains`, 'is empty');
    for (const d of domains)
      if (d.indexOf('*') > 0 && d.indexOf('*') < d.length - 1)
        p.error(`${vpath}.domains`, `${show(d)}: a wildcard may only start or end a domain`);
    if (vh.require_tls !== undefined && vh.require_tls !== 'NONE')
      p.warn(`${vpath}.require_tls`, 'is a server-side setting: ignored');
    for (const k of ['rate_limits', 'virtual_clusters', 'hedge_policy', 'cors'])
      if (vh[k] !== undefined && !(Array.isArray(vh[k]) && (vh[k] as unknown[]).length === 0))
        p.warn(`${vpath}.${k}`, 'is not supported: ignored');
    const vhFaults = perFilterFaults(vh.typed_per_filter_config, `${vpath}.typed_per_filter_config`, ctx, p);
    const routes: RouteModel[] = [];
    arr(vh.routes).forEach((r, j) => {
      const rpath = `${vpath}.routes[${j}]`;
      const levels: HeaderLevel[] = [obj(r) ?? {}, vh, raw];
      const model = route(obj(r) ?? {}, rpath, {
        ctx,
        p,
        vhostRetry: obj(vh.retry_policy),
        headerLevels: mostSpecificWins ? levels.reverse() : levels,
        inheritedFaults: new Map([...configFaults, ...vhFaults]),
      });
      if (model) routes.push(model);
    });
    virtualHosts.push({ name: str(vh.name) ?? `vhost-${i}`, domains, routes });
  });
  return { name, virtualHosts };
}

/** typed_per_filter_config entries holding an HTTPFault (or a FilterConfig wrapping one). */
function perFilterFaults(
  value: unknown,
  path: string,
  ctx: DecodeContext,
  p: Problems,
): Map<string, Fragment | null> {
  const out = new Map<string, Fragment | null>();
  const rec = obj(value);
  if (!rec) return out;
  for (const [filter, a] of Object.entries(rec)) {
    let any = obj(a) as AnyMessage | undefined;
    let disabled = false;
    if (typeUrlName(any?.type_url) === FILTER_CONFIG) {
      const fc = ctx.codec.unpack(any, FILTER_CONFIG) as Obj;
      disabled = fc.disabled === true;
      any = obj(fc.config) as AnyMessage | undefined;
    }
    if (typeUrlName(any?.type_url) !== FAULT) continue;
    if (disabled) {
      out.set(filter, null);
      continue;
    }
    const f = fault(ctx.codec.unpack(any, FAULT) as Obj, `${path}[${JSON.stringify(filter)}]`, p);
    out.set(filter, f ?? null);
  }
  return out;
}

interface RouteContext {
  ctx: DecodeContext;
  p: Problems;
  vhostRetry: Obj | undefined;
  /** Route, virtual host, route configuration: in the order Envoy applies them. */
  headerLevels: HeaderLevel[];
  inheritedFaults: Map<string, Fragment | null>;
}

function route(r: Obj, path: string, rc: RouteContext): RouteModel | undefined {
  const { p } = rc;
  const before = p.errors.length;
  const http: Fragment = {};
  if (typeof r.name === 'string' && r.name !== '') http.name = r.name;
  const block = matchBlock(obj(r.match) ?? {}, `${path}.match`, p);
  if (block === 'never') return undefined;
  http.match = [block];
  const clusters: string[] = [];
  const ref = (c: string) => {
    let i = clusters.indexOf(c);
    if (i < 0) i = clusters.push(c) - 1;
    return clusterRef(i);
  };
  const model: RouteModel = {
    http,
    clusters,
    faults: new Map([
      ...rc.inheritedFaults,
      ...perFilterFaults(r.typed_per_filter_config, `${path}.typed_per_filter_config`, rc.ctx, p),
    ]),
    local: false,
  };
  const headers = headerMutations(rc.headerLevels, path, p);
  if (headers) http.headers = headers;
  const action = obj(r.route);
  if (action) routeAction(action, `${path}.route`, model, ref, rc);
  else if (isObj(r.redirect)) {
    http.redirect = redirect(r.redirect, `${path}.redirect`, p);
    model.local = true;
  } else if (isObj(r.direct_response)) {
    const d = r.direct_response;
    const body = obj(d.body);
    const out: Fragment = { status: num(d.status) ?? 0 };
    if (body) {
      if (typeof body.inline_string === 'string') out.body = { string: body.inline_string };
      else if (body.inline_bytes instanceof Uint8Array)
        out.body = { bytes: Buffer.from(body.inline_bytes).toString('base64') };
      else p.error(`${path}.direct_response.body`, 'only inline_string and inline_bytes are supported');
    }
    http.directResponse = out;
    model.local = true;
  } else {
    p.error(
      path,
      'has no route, redirect or direct_response action (filter_action and non_forwarding_action are server-side)',
    );
  }
  if (p.errors.length > before) return undefined;
  // Checked here with meshwork's own schema (cluster hosts are placeholders).
  checkWith(httpRouteSchema, http, path, p);
  return p.errors.length > before ? undefined : model;
}

type StringMatch = { exact?: string; prefix?: string; regex?: string };

/** One meshwork match block; 'never' when the route can never match (runtime_fraction 0). */
function matchBlock(m: Obj, path: string, p: Problems): Fragment | 'never' {
  const block: Fragment = {};
  const caseSensitive = wrappedBool(m.case_sensitive) ?? true;
  if (typeof m.prefix === 'string' || m.path_specifier === undefined)
    block.uri = { prefix: str(m.prefix) ?? '' };
  else if (typeof m.path === 'string') block.uri = { exact: m.path };
  else if (isObj(m.safe_regex)) block.uri = { regex: str(m.safe_regex.regex) ?? '' };
  else if (typeof m.path_separated_prefix === 'string') {
    const pre = m.path_separated_prefix;
    block.uri = { regex: `${caseSensitive ? '' : '(?i)'}${escapeRegex(pre)}(/.*)?` };
  } else
    p.error(
      `${path}.${String(m.path_specifier)}`,
      'is not supported (use prefix, path, safe_regex or path_separated_prefix)',
    );
  if (!caseSensitive && !(typeof m.path_separated_prefix === 'string')) {
    const u = block.uri as StringMatch;
    if (u.regex !== undefined) u.regex = `(?i)${u.regex}`;
    else block.ignoreUriCase = true;
  }
  const headers: Record<string, StringMatch> = {};
  const without: Record<string, StringMatch> = {};
  arr(m.headers).forEach((h, i) => {
    const hp = `${path}.headers[${i}]`;
    const o = obj(h) ?? {};
    let name = (str(o.name) ?? '').toLowerCase();
    const r = headerCondition(o, hp, p);
    if (r === undefined) return;
    let invert = o.invert_match === true;
    if (r.absent) invert = !invert;
    if (name === ':method') {
      if (invert) {
        p.error(hp, 'an inverted :method match is not supported');
        return;
      }
      block.method = r.cond;
      return;
    }
    if (name === ':authority') name = 'host';
    if (name.startsWith(':')) {
      p.error(`${hp}.name`, `pseudo-header ${show(name)} is not supported (:method and :authority are)`);
      return;
    }
    const target = invert ? without : headers;
    if (Object.hasOwn(target, name)) {
      p.error(hp, `a second condition on header ${show(name)} is not supported`);
      return;
    }
    Object.defineProperty(target, name, {
      value: r.cond,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  });
  if (isObj(m.grpc)) {
    if (Object.hasOwn(headers, 'content-type'))
      p.error(`${path}.grpc`, 'cannot be combined with a content-type header match');
    else headers['content-type'] = { prefix: 'application/grpc' };
  }
  if (Object.keys(headers).length > 0) block.headers = headers;
  if (Object.keys(without).length > 0) block.withoutHeaders = without;
  const query: Record<string, StringMatch> = {};
  arr(m.query_parameters).forEach((q, i) => {
    const qp = `${path}.query_parameters[${i}]`;
    const o = obj(q) ?? {};
    const name = str(o.name) ?? '';
    if (name === '') {
      p.error(`${qp}.name`, 'is empty');
      return;
    }
    let cond: StringMatch | undefined;
    if (o.present_match === true) cond = {};
    else if (isObj(o.string_match)) cond = stringMatcher(o.string_match, `${qp}.string_match`, p);
    else {
      p.error(qp, 'needs string_match or present_match');
      return;
    }
    if (cond === undefined) return;
    if (Object.hasOwn(query, name)) {
      p.error(qp, `a second condition on query parameter ${show(name)} is not supported`);
      return;
    }
    Object.defineProperty(query, name, { value: cond, enumerable: true, writable: true, configurable: true });
  });
  if (Object.keys(query).length > 0) block.queryParams = query;
  const rf = obj(m.runtime_fraction);
  if (rf) {
    const pct = fractionPercent(rf.default_value) ?? 0;
    if (pct <= 0) {
      p.warn(`${path}.runtime_fraction`, 'is 0%: the route never matches and is left out');
      return 'never';
    }
    if (pct < 100)
      p.error(
        `${path}.runtime_fraction`,
        `${pct}% is not supported (a route that matches a fraction of requests; 0% and 100% are)`,
      );
  }
  for (const k of ['tls_context', 'dynamic_metadata', 'filter_state', 'cel_matcher'])
    if (m[k] !== undefined && !(Array.isArray(m[k]) && (m[k] as unknown[]).length === 0))
      p.error(`${path}.${k}`, 'is not supported');
  return block;
}

/** An Envoy HeaderMatcher's condition; `absent` for present_match: false. */
function headerCondition(
  o: Obj,
  path: string,
  p: Problems,
): { cond: StringMatch; absent?: boolean } | undefined {
  if (typeof o.exact_match === 'string') return { cond: { exact: o.exact_match } };
  if (typeof o.prefix_match === 'string') return { cond: { prefix: o.prefix_match } };
  if (typeof o.suffix_match === 'string') return { cond: { regex: `.*${escapeRegex(o.suffix_match)}` } };
  if (typeof o.contains_match === 'string')
    return { cond: { regex: `.*${escapeRegex(o.contains_match)}.*` } };
  if (isObj(o.safe_regex_match)) return { cond: { regex: str(o.safe_regex_match.regex) ?? '' } };
  if (o.present_match !== undefined)
    return o.present_match === true ? { cond: {} } : { cond: {}, absent: true };
  if (isObj(o.string_match)) {
    const c = stringMatcher(o.string_match, `${path}.string_match`, p);
    return c ? { cond: c } : undefined;
  }
  if (o.range_match !== undefined) {
    p.error(`${path}.range_match`, 'is not supported');
    return undefined;
  }
  // No matcher at all: Envoy treats it as "present".
  return { cond: {} };
}

/** envoy.type.matcher.v3.StringMatcher → meshwork StringMatch (ignore_case through (?i)). */
function stringMatcher(m: Obj, path: string, p: Problems): StringMatch | undefined {
  const ic = m.ignore_case === true;
  const lit = (s: string) => escapeRegex(s);
  if (typeof m.exact === 'string') return ic ? { regex: `(?i)${lit(m.exact)}` } : { exact: m.exact };
  if (typeof m.prefix === 'string') return ic ? { regex: `(?i)${lit(m.prefix)}.*` } : { prefix: m.prefix };
  if (typeof m.suffix === 'string') return { regex: `${ic ? '(?i)' : ''}.*${lit(m.suffix)}` };
  if (typeof m.contains === 'string') return { regex: `${ic ? '(?i)' : ''}.*${lit(m.contains)}.*` };
  if (isObj(m.safe_regex)) return { regex: `${ic ? '(?i)' : ''}${str(m.safe_regex.regex) ?? ''}` };
  p.error(path, 'has no supported matcher (exact, prefix, suffix, contains, safe_regex)');
  return undefined;
}

/** Header mutations of route, virtual host and route configuration, in Envoy's order. */
function headerMutations(levels: HeaderLevel[], path: string, p: Problems): Fragment | undefined {
  const side = (
    addKey: 'request_headers_to_add' | 'response_headers_to_add',
    removeKey: 'request_headers_to_remove' | 'response_headers_to_remove',
  ) => {
    const set: Record<string, string> = {};
    const add: Record<string, string> = {};
    const remove: string[] = [];
    for (const level of levels) {
      for (const name of arr(level[removeKey])) if (typeof name === 'string') remove.push(name.toLowerCase());
      for (const [i, hv] of arr(level[addKey]).entries()) {
        const o = obj(hv) ?? {};
        const h = obj(o.header) ?? {};
        const key = (str(h.key) ?? '').toLowerCase();
        let value = str(h.value);
        if (value === undefined && h.raw_value instanceof Uint8Array)
          value = Buffer.from(h.raw_value).toString('latin1');
        value ??= '';
        const hp = `${path}.${addKey}[${i}]`;
        if (/%[A-Z_]+(\([^)]*\))?%/.test(value.replaceAll('%%', ''))) {
          p.warn(hp, `value ${show(value)} uses an Envoy command operator: header left out`);
          continue;
        }
        value = value.replaceAll('%%', '%');
        const action =
          str(o.append_action) ??
          (wrappedBool(o.append) === false ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD');
        if (value === '' && o.keep_empty_value !== true) continue;
        const own = (rec: Record<string, string>) => Object.hasOwn(rec, key);
        if (action === 'OVERWRITE_IF_EXISTS_OR_ADD') {
          define(set, key, value);
          if (own(add)) delete add[key];
        } else if (action === 'APPEND_IF_EXISTS_OR_ADD') {
          define(add, key, own(add) ? `${add[key]},${value}` : value);
        } else p.warn(hp, `append_action ${action} is not supported: header left out`);
      }
    }
    const out: Fragment = {};
    if (Object.keys(set).length) out.set = set;
    if (Object.keys(add).length) out.add = add;
    if (remove.length) out.remove = [...new Set(remove)];
    return Object.keys(out).length ? out : undefined;
  };
  const request = side('request_headers_to_add', 'request_headers_to_remove');
  const response = side('response_headers_to_add', 'response_headers_to_remove');
  if (!request && !response) return undefined;
  return { ...(request ? { request } : {}), ...(response ? { response } : {}) };
}

function define(rec: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(rec, key, { value, enumerable: true, writable: true, configurable: true });
}

function routeAction(
  a: Obj,
  path: string,
  model: RouteModel,
  ref: (c: string) => string,
  rc: RouteContext,
): void {
  const { p } = rc;
  const http = model.http;
  if (typeof a.cluster === 'string' && a.cluster !== '')
    http.route = [{ destination: { host: ref(a.cluster) } }];
  else if (isObj(a.weighted_clusters))
    http.route = weighted(a.weighted_clusters, `${path}.weighted_clusters`, ref, p);
  else if (typeof a.cluster_header === 'string' && a.cluster_header !== '') {
    model.clusterHeader = a.cluster_header.toLowerCase();
    http.route = [{ destination: {} }];
  } else p.error(path, 'names no cluster (cluster, weighted_clusters or cluster_header)');
  if (a.metadata_match !== undefined)
    p.error(`${path}.metadata_match`, 'is not supported (subset load balancing by endpoint metadata)');
  for (const k of [
    'cluster_specifier_plugin',
    'inline_cluster_specifier_plugin',
    'host_rewrite_header',
    'host_rewrite_path_regex',
    'path_rewrite_policy',
  ])
    if (a[k] !== undefined) p.error(`${path}.${k}`, 'is not supported');
  // Rewrites.
  const rewrite: Fragment = {};
  if (typeof a.prefix_rewrite === 'string') rewrite.uri = a.prefix_rewrite;
  if (isObj(a.regex_rewrite))
    rewrite.uriRegexRewrite = {
      match: str(obj(a.regex_rewrite.pattern)?.regex) ?? '',
      rewrite: str(a.regex_rewrite.substitution) ?? '',
    };
  if (typeof a.host_rewrite_literal === 'string') rewrite.authority = a.host_rewrite_literal;
  if (wrappedBool(a.auto_host_rewrite))
    p.warn(`${path}.auto_host_rewrite`, 'is not supported: the Host header is kept');
  if (Object.keys(rewrite).length > 0) http.rewrite = rewrite;
  // Timeouts: `timeout` (Envoy's default 15 s when unset) and max_stream_duration; the assembly
  // combines them with the listener's.
  if (a.timeout !== undefined) model.timeoutMs = durationMs(a.timeout);
  const msd = durationMs(obj(a.max_stream_duration)?.max_stream_duration);
  if (msd !== undefined) model.maxStreamDurationMs = msd;
  if (a.idle_timeout !== undefined) p.warn(`${path}.idle_timeout`, 'is not supported: ignored');
  // Retries: the route's policy, else the virtual host's; none = no retries (Envoy).
  const rp = obj(a.retry_policy) ?? rc.vhostRetry;
  http.retries = rp ? retries(rp, `${path}.retry_policy`, p) : { attempts: 0 };
  // Mirrors.
  const mirrors = arr(a.request_mirror_policies).map((m, i) => {
    const o = obj(m) ?? {};
    const mp = `${path}.request_mirror_policies[${i}]`;
    if (typeof o.cluster !== 'string' || o.cluster === '') {
      p.error(mp, 'needs a cluster (cluster_header is not supported)');
      return undefined;
    }
    const pct = isObj(o.runtime_fraction) ? fractionPercent(o.runtime_fraction.default_value) : undefined;
    return {
      destination: { host: ref(o.cluster) },
      ...(pct !== undefined ? { percentage: { value: pct } } : {}),
    };
  });
  if (mirrors.length === 1 && mirrors[0]) {
    http.mirror = mirrors[0].destination;
    if (mirrors[0].percentage) http.mirrorPercentage = mirrors[0].percentage;
  } else if (mirrors.length > 1) http.mirrors = mirrors.filter((m) => m !== undefined);
  // Hash policy: the first one meshwork can use (one key per request).
  const policies = arr(a.hash_policy);
  for (const [i, h] of policies.entries()) {
    const o = obj(h) ?? {};
    const hp = `${path}.hash_policy[${i}]`;
    let key: Fragment | undefined;
    if (isObj(o.header)) {
      if (o.header.regex_rewrite !== undefined)
        p.warn(`${hp}.header.regex_rewrite`, 'is not supported: the whole value is hashed');
      key = { httpHeaderName: (str(o.header.header_name) ?? '').toLowerCase() };
    } else if (isObj(o.cookie)) {
      key = {
        httpCookie: {
          name: str(o.cookie.name) ?? '',
          ttl: durationMs(o.cookie.ttl) ?? 0,
          ...(typeof o.cookie.path === 'string' && o.cookie.path ? { path: o.cookie.path } : {}),
        },
      };
    } else if (isObj(o.query_parameter)) key = { httpQueryParameterName: str(o.query_parameter.name) ?? '' };
    else if (isObj(o.connection_properties) && o.connection_properties.source_ip === true)
      key = { useSourceIp: true };
    if (key === undefined) {
      p.warn(hp, 'is not supported (filter_state, or no key): skipped');
      continue;
    }
    model.hash = key;
    if (i < policies.length - 1)
      p.warn(`${path}.hash_policy`, `only the first usable policy is used (meshwork hashes one key)`);
    break;
  }
  for (const k of ['rate_limits', 'cors', 'hedge_policy', 'upgrade_configs', 'internal_redirect_policy'])
    if (a[k] !== undefined && !(Array.isArray(a[k]) && (a[k] as unknown[]).length === 0))
      p.warn(`${path}.${k}`, 'is not supported: ignored');
}

/** weighted_clusters → destinations whose weights are whole percents summing to 100. */
function weighted(w: Obj, path: string, ref: (c: string) => string, p: Problems): Fragment[] {
  const list = arr(w.clusters).map((c) => obj(c) ?? {});
  if (list.length === 0) {
    p.error(`${path}.clusters`, 'is empty');
    return [];
  }
  const weights = list.map((c) => wrapped(c.weight) ?? 0);
  const total = weights.reduce((a, b) => a + b, 0);
  const declared = wrapped(w.total_weight);
  if (declared !== undefined && declared > 0 && declared !== total)
    p.error(`${path}.total_weight`, `is ${declared} but the weights sum to ${total}`);
  if (total <= 0) {
    p.error(`${path}.clusters`, 'weights sum to 0');
    return [];
  }
  const pct = toPercents(weights, total);
  return list.map((c, i) => {
    const cp = `${path}.clusters[${i}]`;
    const name = str(c.name) ?? '';
    if (name === '') p.error(`${cp}.name`, 'is empty (cluster_header is not supported here)');
    const d: Fragment = { destination: { host: ref(name) }, weight: pct[i] };
    const headers = headerMutations([c as HeaderLevel], cp, p);
    if (headers) d.headers = headers;
    if (c.host_rewrite_literal !== undefined)
      p.warn(`${cp}.host_rewrite_literal`, 'per weighted cluster is not supported: ignored');
    if (c.typed_per_filter_config !== undefined)
      p.warn(`${cp}.typed_per_filter_config`, "per weighted cluster is not supported: the route's applies");
    return d;
  });
}

/**
 * Weights as whole percents summing to 100 (meshwork's VirtualService arithmetic), by largest
 * remainder; a weight above 0 keeps at least 1%.
 */
export function toPercents(weights: readonly number[], total: number): number[] {
  const exact = weights.map((w) => (w * 100) / total);
  const out = exact.map((x, i) => ((weights[i] as number) > 0 ? Math.max(1, Math.floor(x)) : 0));
  let diff = 100 - out.reduce((a, b) => a + b, 0);
  const order = exact
    .map((x, i) => ({ i, rem: x - Math.floor(x) }))
    .filter(({ i }) => (weights[i] as number) > 0)
    .sort((a, b) => b.rem - a.rem || a.i - b.i);
  for (let k = 0; diff > 0 && order.length > 0; k++, diff--) {
    const i = (order[k % order.length] as { i: number }).i;
    out[i] = (out[i] as number) + 1;
  }
  const byWeight = [...order].sort((a, b) => (out[b.i] as number) - (out[a.i] as number));
  for (let k = 0; diff < 0 && byWeight.length > 0; k++) {
    const i = (byWeight[k % byWeight.length] as { i: number }).i;
    if ((out[i] as number) > 1) {
      out[i] = (out[i] as number) - 1;
      diff++;
    }
  }
  return out;
}

/** Envoy's retry_on tokens meshwork implements (the others are dropped with a warning). */
const RETRY_TOKENS = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'refused-stream',
  'retriable-4xx',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'resource-exhausted',
  'unavailable',
]);

function retries(r: Obj, path: string, p: Problems): Fragment {
  const tokens: (string | number)[] = [];
  const codes = arr(r.retriable_status_codes).filter((c): c is number => typeof c === 'number');
  for (const raw of (str(r.retry_on) ?? '').split(',')) {
    const t = raw.trim();
    if (t === '') continue;
    if (t === 'retriable-status-codes') {
      // Envoy retries the listed codes only; meshwork's bare token would mean 503.
      tokens.push(...codes);
      continue;
    }
    if (RETRY_TOKENS.has(t)) tokens.push(t);
    else p.warn(`${path}.retry_on`, `${show(t)} is not supported: left out`);
  }
  if (tokens.length === 0) return { attempts: 0 };
  let attempts = wrapped(r.num_retries) ?? 1;
  if (r.num_retries === undefined) attempts = 1;
  if (attempts > 10) {
    p.warn(`${path}.num_retries`, `${attempts} is more than meshwork allows: 10 retries`);
    attempts = 10;
  }
  const out: Fragment = { attempts, retryOn: tokens };
  const ptt = durationMs(r.per_try_timeout);
  if (ptt !== undefined && ptt > 0) out.perTryTimeout = ptt;
  const bo = obj(r.retry_back_off);
  if (bo) {
    const base = durationMs(bo.base_interval);
    const max = durationMs(bo.max_interval);
    if (base !== undefined && base > 0) {
      out.backoff = base;
      if (max !== undefined && max > 0 && max !== base * 10)
        p.warn(
          `${path}.retry_back_off.max_interval`,
          `${max} ms: meshwork's largest backoff is 10 × the base (${base * 10} ms)`,
        );
    }
  }
  // Envoy avoids the hosts already tried only with the previous_hosts predicate (Istio sets it).
  const predicates = arr(r.retry_host_predicate).map((x) => str(obj(x)?.name));
  out.retryIgnorePreviousHosts = predicates.includes('envoy.retry_host_predicates.previous_hosts');
  for (const k of [
    'retry_host_predicate',
    'retry_priority',
    'retriable_headers',
    'retriable_request_headers',
    'rate_limited_retry_back_off',
    'per_try_idle_timeout',
  ])
    if (r[k] !== undefined && !(Array.isArray(r[k]) && (r[k] as unknown[]).length === 0)) {
      if (k === 'retry_host_predicate') continue;
      p.warn(`${path}.${k}`, 'is not supported: ignored');
    }
  return out;
}

const REDIRECT_CODES: Record<string, number> = {
  MOVED_PERMANENTLY: 301,
  FOUND: 302,
  SEE_OTHER: 303,
  TEMPORARY_REDIRECT: 307,
  PERMANENT_REDIRECT: 308,
};

function redirect(r: Obj, path: string, p: Problems): Fragment {
  const out: Fragment = {};
  if (typeof r.path_redirect === 'string') out.uri = r.path_redirect;
  if (typeof r.prefix_rewrite === 'string') out.prefixRewrite = r.prefix_rewrite;
  if (r.regex_rewrite !== undefined) p.error(`${path}.regex_rewrite`, 'is not supported in a redirect');
  if (typeof r.host_redirect === 'string') out.authority = r.host_redirect;
  if (typeof r.port_redirect === 'number') out.port = r.port_redirect;
  if (r.https_redirect === true) out.scheme = 'https';
  else if (typeof r.scheme_redirect === 'string') out.scheme = r.scheme_redirect;
  out.redirectCode = REDIRECT_CODES[str(r.response_code) ?? 'MOVED_PERMANENTLY'] ?? 301;
  if (r.strip_query === true) p.warn(`${path}.strip_query`, 'is not supported: the query is kept');
  return out;
}

// ---- CDS ----------------------------------------------------------------------------------------

function cluster(name: string, c: Obj, ctx: DecodeContext, p: Problems): ClusterModel | undefined {
  let discovery: ClusterDiscovery | undefined;
  if (c.cluster_type !== undefined) {
    p.error(
      'cluster_type',
      `${show(obj(c.cluster_type)?.name)} is not supported (aggregate and custom clusters)`,
    );
  } else {
    const type = str(c.type) ?? 'STATIC';
    if (type === 'EDS') {
      const eds = obj(c.eds_cluster_config) ?? {};
      const src = obj(eds.eds_config);
      if (src && src.ads === undefined && src.self === undefined)
        p.warn(
          'eds_cluster_config.eds_config',
          'is neither ads nor self: the endpoints are asked for over ADS',
        );
      discovery = { kind: 'eds', serviceName: str(eds.service_name) || name };
    } else if (type === 'STATIC' || type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
      const la = obj(c.load_assignment);
      const m = la ? endpoints(name, la, p, 'load_assignment.') : undefined;
      const eps = m ? m.localities.flatMap((l) => l.endpoints) : [];
      if (type === 'STATIC')
        discovery = { kind: 'static', endpoints: eps.map((e) => spec(e.host, e.port, e.weight, undefined)) };
      else if (eps.length !== 1)
        p.error('load_assignment', `a ${type} cluster needs exactly one endpoint (host and port to resolve)`);
      else
        discovery = {
          kind: 'dns',
          host: (eps[0] as { host: string }).host,
          port: (eps[0] as { port: number }).port,
        };
    } else p.error('type', `${show(type)} is not supported (EDS, STATIC, STRICT_DNS and LOGICAL_DNS are)`);
  }
  const tp: Fragment = {};
  const lb = loadBalancer(c, ctx.codec, p);
  tp.loadBalancer = lb.loadBalancer;
  tp.outlierDetection = outlier(obj(c.outlier_detection), p);
  const pool = connectionPool(c, p);
  if (pool) tp.connectionPool = pool;
  const tls = transportSocket(c, ctx, p);
  if (tls) tp.tls = tls;
  for (const k of [
    'lrs_server',
    'upstream_connection_options',
    'filters',
    'typed_extension_protocol_options',
  ])
    if (c[k] !== undefined && !(isObj(c[k]) && Object.keys(c[k] as Obj).length === 0))
      p.warn(k, 'is not supported: ignored');
  checkWith(trafficPolicySchema, tp, 'trafficPolicy (from the cluster)', p);
  if (!discovery) return undefined;
  const model: ClusterModel = {
    name,
    discovery,
    trafficPolicy: tp,
    hash: lb.hash,
    localityWeighted: lb.localityWeighted,
  };
  const hc = healthCheck(arr(c.health_checks), p);
  if (hc) model.healthCheck = hc;
  return model;
}

interface LbResult {
  loadBalancer: Fragment;
  hash?: HashKind | undefined;
  localityWeighted: boolean;
}

function loadBalancer(c: Obj, codec: Codec, p: Problems): LbResult {
  const common = obj(c.common_lb_config) ?? {};
  const out: LbResult = {
    // The control plane decides locality (priorities and weights): meshwork's own zone preference is off.
    loadBalancer: { localityLbSetting: { enabled: false } },
    localityWeighted: isObj(common.locality_weighted_lb_config),
  };
  const lb = out.loadBalancer;
  const panic = obj(common.healthy_panic_threshold);
  if (panic) lb.panicThreshold = num(panic.value) ?? 0;
  if (common.zone_aware_lb_config !== undefined)
    p.warn(
      'common_lb_config.zone_aware_lb_config',
      'is not supported: endpoints are weighted by their localities',
    );
  const slowStart = (cfg: Obj | undefined) => {
    const ss = obj(cfg?.slow_start_config);
    if (!ss) return;
    const w = durationMs(ss.slow_start_window);
    if (w === undefined || w <= 0) return;
    const warmup: Fragment = { duration: w };
    const agg = obj(ss.aggression);
    if (agg) warmup.aggression = Math.max(1, num(agg.default_value) ?? 1);
    const minPct = obj(ss.min_weight_percent);
    if (minPct) warmup.minimumPercent = num(minPct.value) ?? 10;
    lb.warmup = warmup;
  };
  const setSimple = (s: string) => {
    lb.simple = s;
  };
  const policies = arr(obj(c.load_balancing_policy)?.policies);
  if (policies.length > 0) {
    // load_balancing_policy wins over lb_policy: the first policy meshwork supports.
    const chosen = pickPolicy(policies, 'load_balancing_policy.policies', { codec, p, out, setSimple }, 0);
    if (!chosen)
      p.error(
        'load_balancing_policy',
        'has no policy meshwork supports (round_robin, least_request, random, ring_hash, maglev, wrr_locality)',
      );
    return out;
  }
  const policy = str(c.lb_policy) ?? 'ROUND_ROBIN';
  switch (policy) {
    case 'ROUND_ROBIN':
      setSimple('ROUND_ROBIN');
      slowStart(obj(c.round_robin_lb_config));
      break;
    case 'LEAST_REQUEST': {
      setSimple('LEAST_REQUEST');
      const cfg = obj(c.least_request_lb_config);
      const choice = wrapped(cfg?.choice_count);
      if (choice !== undefined && choice !== 2)
        p.warn('least_request_lb_config.choice_count', `${choice}: meshwork compares 2 endpoints`);
      slowStart(cfg);
      break;
    }
    case 'RANDOM':
      setSimple('RANDOM');
      break;
    case 'RING_HASH': {
      const cfg = obj(c.ring_hash_lb_config) ?? {};
      out.hash = { kind: 'ring', ...ringSize(wrapped(cfg.minimum_ring_size)) };
      if (cfg.hash_function === 'MURMUR_HASH_2')
        p.warn('ring_hash_lb_config.hash_function', 'MURMUR_HASH_2: meshwork hashes with xxHash');
      break;
    }
    case 'MAGLEV': {
      const size = wrapped(obj(c.maglev_lb_config)?.table_size);
      out.hash = { kind: 'maglev', ...(size ? { tableSize: size } : {}) };
      break;
    }
    default:
      p.error(
        'lb_policy',
        `${show(policy)} is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV)`,
      );
  }
  return out;
}

const ringSize = (n: number | undefined) => (n ? { minimumRingSize: Math.min(n, 8_388_608) } : {});

interface PolicyPick {
  codec: Codec;
  p: Problems;
  out: LbResult;
  setSimple: (s: string) => void;
}

function pickPolicy(policies: unknown[], path: string, pick: PolicyPick, depth: number): boolean {
  const { p, out, setSimple } = pick;
  for (const [i, entry] of policies.entries()) {
    const ext = obj(obj(entry)?.typed_extension_config) ?? {};
    const any = obj(ext.typed_config) as AnyMessage | undefined;
    const type = typeUrlName(any?.type_url);
    const pp = `${path}[${i}]`;
    switch (type) {
      case `${LB}.round_robin.v3.RoundRobin`:
        setSimple('ROUND_ROBIN');
        return true;
      case `${LB}.least_request.v3.LeastRequest`:
        setSimple('LEAST_REQUEST');
        return true;
      case `${LB}.random.v3.Random`:
        setSimple('RANDOM');
        return true;
      case `${LB}.ring_hash.v3.RingHash`: {
        const cfg = pick.codec.unpack(any, type) ?? {};
        out.hash = { kind: 'ring', ...ringSize(wrapped(cfg.minimum_ring_size)) };
        return true;
      }
      case `${LB}.maglev.v3.Maglev`: {
        const size = wrapped(pick.codec.unpack(any, type)?.table_size);
        out.hash = { kind: 'maglev', ...(size ? { tableSize: size } : {}) };
        return true;
      }
      case `${LB}.wrr_locality.v3.WrrLocality`: {
        if (depth > 0) break;
        out.localityWeighted = true;
        const wrr = pick.codec.unpack(any, type) ?? {};
        const inner = arr(obj(wrr.endpoint_picking_policy)?.policies);
        return pickPolicy(inner, `${pp}.endpoint_picking_policy.policies`, pick, 1);
      }
      default:
        p.warn(pp, `${type || 'a policy without type'} is not supported: the next policy is tried`);
    }
  }
  return false;
}

function outlier(od: Obj | undefined, p: Problems): Fragment {
  // Envoy: no outlier_detection, no outlier detection.
  if (!od) return { enabled: false };
  const out: Fragment = {};
  const u = (k: string) => wrapped(od[k]);
  const enforcing = (k: string) => u(k);
  const c5xx = u('consecutive_5xx');
  const e5xx = enforcing('enforcing_consecutive_5xx');
  if (e5xx === 0) out.consecutive5xxErrors = 0;
  else if (c5xx !== undefined) out.consecutive5xxErrors = c5xx;
  if (e5xx !== undefined && e5xx > 0 && e5xx < 100)
    p.warn('outlier_detection.enforcing_consecutive_5xx', `${e5xx}%: meshwork ejects every time (100%)`);
  const eGw = enforcing('enforcing_consecutive_gateway_failure') ?? 0;
  if (eGw > 0) out.consecutiveGatewayErrors = u('consecutive_gateway_failure') ?? 5;
  if (od.split_external_local_origin_errors === true) {
    const eLocal = enforcing('enforcing_consecutive_local_origin_failure') ?? 100;
    out.consecutiveLocalOriginFailures = eLocal === 0 ? 0 : (u('consecutive_local_origin_failure') ?? 5);
  }
  const ms = (k: string) => durationMs(od[k]);
  if (ms('interval') !== undefined) out.interval = ms('interval');
  if (ms('base_ejection_time') !== undefined) out.baseEjectionTime = ms('base_ejection_time');
  if (ms('max_ejection_time') !== undefined) out.maxEjectionTime = ms('max_ejection_time');
  if (u('max_ejection_percent') !== undefined) out.maxEjectionPercent = u('max_ejection_percent');
  const sr = enforcing('enforcing_success_rate');
  if (sr !== undefined) out.enforcingSuccessRate = sr;
  if (u('success_rate_minimum_hosts') !== undefined)
    out.successRateMinimumHosts = Math.max(1, u('success_rate_minimum_hosts') ?? 1);
  if (u('success_rate_request_volume') !== undefined)
    out.successRateRequestVolume = Math.max(1, u('success_rate_request_volume') ?? 1);
  if (u('success_rate_stdev_factor') !== undefined)
    out.successRateStdevFactor = u('success_rate_stdev_factor');
  if (u('failure_percentage_threshold') !== undefined)
    out.failurePercentageThreshold = u('failure_percentage_threshold');
  const fp = enforcing('enforcing_failure_percentage');
  if (fp !== undefined) out.enforcingFailurePercentage = fp;
  if (u('failure_percentage_minimum_hosts') !== undefined)
    out.failurePercentageMinimumHosts = Math.max(1, u('failure_percentage_minimum_hosts') ?? 1);
  if (u('failure_percentage_request_volume') !== undefined)
    out.failurePercentageRequestVolume = Math.max(1, u('failure_percentage_request_volume') ?? 1);
  if (od.max_ejection_time_jitter !== undefined)
    p.warn('outlier_detection.max_ejection_time_jitter', 'is not supported: ignored');
  return out;
}

function connectionPool(c: Obj, p: Problems): Fragment | undefined {
  const tcp: Fragment = {};
  const http: Fragment = {};
  // Envoy's connect_timeout default is 5 s.
  const ct = durationMs(c.connect_timeout);
  tcp.connectTimeout = ct === undefined ? 5_000 : ct;
  const thresholds = arr(obj(c.circuit_breakers)?.thresholds).map((t) => obj(t) ?? {});
  const def = thresholds.find((t) => t.priority === undefined || t.priority === 'DEFAULT');
  if (def) {
    const u = (k: string) => wrapped(def[k]);
    if (u('max_connections') !== undefined) tcp.maxConnections = u('max_connections');
    if (u('max_pending_requests') !== undefined) http.http1MaxPendingRequests = u('max_pending_requests');
    if (u('max_requests') !== undefined) http.http2MaxRequests = u('max_requests');
    if (def.max_retries !== undefined || def.retry_budget !== undefined)
      p.warn(
        'circuit_breakers.thresholds',
        'max_retries and retry_budget are not supported: meshwork bounds retries with its retry budget',
      );
  }
  const chpo = obj(c.common_http_protocol_options) ?? {};
  const idle = durationMs(chpo.idle_timeout);
  if (idle !== undefined && idle > 0) http.idleTimeout = idle;
  const mrpc = wrapped(chpo.max_requests_per_connection) ?? wrapped(c.max_requests_per_connection);
  if (mrpc !== undefined) http.maxRequestsPerConnection = mrpc;
  const out: Fragment = { tcp };
  if (Object.keys(http).length > 0) out.http = http;
  return out;
}

function transportSocket(c: Obj, ctx: DecodeContext, p: Problems): Fragment | undefined {
  if (arr(c.transport_socket_matches).length > 0)
    p.error('transport_socket_matches', 'is not supported (one transport_socket per cluster)');
  const ts = obj(c.transport_socket);
  if (!ts) return undefined;
  const any = obj(ts.typed_config) as AnyMessage | undefined;
  const type = typeUrlName(any?.type_url);
  if (
    type === 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' ||
    (!any && ts.name === 'envoy.transport_sockets.raw_buffer')
  )
    return undefined;
  if (type !== UPSTREAM_TLS) {
    p.error(
      'transport_socket',
      `${show(type || ts.name)} is not supported (UpstreamTlsContext and raw_buffer are)`,
    );
    return undefined;
  }
  return upstreamTls(ctx.codec.unpack(any, UPSTREAM_TLS) as Obj, ctx, p);
}

function upstreamTls(t: Obj, ctx: DecodeContext, p: Problems): Fragment | undefined {
  const path = 'transport_socket.typed_config';
  const common = obj(t.common_tls_context) ?? {};
  const providers = ctx.bootstrap.certificateProviders;
  const instance = (v: unknown, at: string): string | undefined => {
    const o = obj(v);
    if (!o) return undefined;
    const name = str(o.instance_name) ?? '';
    if (!providers.has(name)) {
      p.error(
        `${path}.${at}.instance_name`,
        `${show(name)} is not a certificate provider of the bootstrap (${[...providers.keys()].join(', ') || 'none'})`,
      );
      return undefined;
    }
    return name;
  };
  const out: Fragment = {};
  // Client certificate.
  let certInstance: string | undefined;
  let certFiles: { cert: string; key: string } | undefined;
  if (common.tls_certificate_provider_instance !== undefined)
    certInstance = instance(
      common.tls_certificate_provider_instance,
      'common_tls_context.tls_certificate_provider_instance',
    );
  else if (common.tls_certificate_certificate_provider_instance !== undefined)
    certInstance = instance(
      common.tls_certificate_certificate_provider_instance,
      'common_tls_context.tls_certificate_certificate_provider_instance',
    );
  else if (arr(common.tls_certificates).length > 0) {
    const tc = obj(arr(common.tls_certificates)[0]) ?? {};
    const cert = str(obj(tc.certificate_chain)?.filename);
    const key = str(obj(tc.private_key)?.filename);
    if (!cert || !key)
      p.error(
        `${path}.common_tls_context.tls_certificates[0]`,
        'only certificate files (filename) are supported',
      );
    else certFiles = { cert, key };
  }
  if (arr(common.tls_certificate_sds_secret_configs).length > 0)
    p.error(
      `${path}.common_tls_context.tls_certificate_sds_secret_configs`,
      'SDS is not supported (use certificate provider instances, as istiod sends to proxyless clients)',
    );
  // Validation.
  const combined = obj(common.combined_validation_context);
  const vc = obj(common.validation_context) ?? obj(combined?.default_validation_context) ?? {};
  if (
    common.validation_context_sds_secret_config !== undefined ||
    combined?.validation_context_sds_secret_config !== undefined
  )
    p.error(`${path}.common_tls_context`, 'SDS validation contexts are not supported');
  let caInstance: string | undefined;
  let caFile: string | undefined;
  if (vc.ca_certificate_provider_instance !== undefined)
    caInstance = instance(
      vc.ca_certificate_provider_instance,
      'common_tls_context.validation_context.ca_certificate_provider_instance',
    );
  else if (combined?.validation_context_certificate_provider_instance !== undefined)
    caInstance = instance(
      combined.validation_context_certificate_provider_instance,
      'common_tls_context.combined_validation_context.validation_context_certificate_provider_instance',
    );
  else if (common.validation_context_certificate_provider_instance !== undefined)
    caInstance = instance(
      common.validation_context_certificate_provider_instance,
      'common_tls_context.validation_context_certificate_provider_instance',
    );
  else if (isObj(vc.trusted_ca)) {
    caFile = str(vc.trusted_ca.filename);
    if (!caFile) p.error(`${path}.validation_context.trusted_ca`, 'only a file (filename) is supported');
  }
  // Subject alternative names: exact names only (meshwork cannot check a prefix or a regex, and
  // checking nothing would accept any server).
  const sans: string[] = [];
  arr(vc.match_typed_subject_alt_names).forEach((m, i) => {
    const o = obj(m) ?? {};
    const at = `${path}.validation_context.match_typed_subject_alt_names[${i}]`;
    const exact = str(obj(o.matcher)?.exact);
    const type = str(o.san_type) ?? 'SAN_TYPE_UNSPECIFIED';
    if (exact === undefined || obj(o.matcher)?.ignore_case === true) {
      p.error(`${at}.matcher`, 'only exact matchers are supported');
      return;
    }
    if (type === 'URI' && !exact.startsWith('spiffe://')) {
      p.error(at, `URI SAN ${show(exact)}: only spiffe:// URIs are supported`);
      return;
    }
    if (type !== 'URI' && type !== 'DNS') {
      p.error(`${at}.san_type`, `${type} is not supported (DNS and URI are)`);
      return;
    }
    sans.push(exact);
  });
  arr(vc.match_subject_alt_names).forEach((m, i) => {
    const o = obj(m) ?? {};
    const at = `${path}.validation_context.match_subject_alt_names[${i}]`;
    if (typeof o.exact !== 'string' || o.ignore_case === true) {
      p.error(at, 'only exact matchers are supported');
      return;
    }
    sans.push(o.exact);
  });
  if (sans.length > 0) out.subjectAltNames = sans;
  if (typeof t.sni === 'string' && t.sni !== '') out.sni = t.sni;
  const idp = ctx.identityProvider;
  if (
    certInstance !== undefined &&
    certInstance === idp &&
    (caInstance === idp || caInstance === undefined)
  ) {
    out.mode = 'ISTIO_MUTUAL';
    return out;
  }
  if (caInstance !== undefined) {
    const ca = providers.get(caInstance)?.caCertificateFile;
    if (!ca)
      p.error(
        `${path}.validation_context`,
        `certificate provider ${show(caInstance)} has no ca_certificate_file`,
      );
    else out.caCertificates = ca;
  } else if (caFile) out.caCertificates = caFile;
  else p.warn(`${path}.validation_context`, 'is missing: the server is verified against the system CAs');
  if (certInstance !== undefined) {
    const prov = providers.get(certInstance);
    if (!prov?.certificateFile || !prov.privateKeyFile)
      p.error(
        `${path}.common_tls_context`,
        `certificate provider ${show(certInstance)} has no certificate_file and private_key_file`,
      );
    else certFiles = { cert: prov.certificateFile, key: prov.privateKeyFile };
  }
  if (certFiles) {
    out.mode = 'MUTUAL';
    out.clientCertificate = certFiles.cert;
    out.privateKey = certFiles.key;
  } else out.mode = 'SIMPLE';
  return out;
}

function healthCheck(checks: unknown[], p: Problems): Fragment | undefined {
  if (checks.length === 0) return undefined;
  const hc = obj(checks[0]) ?? {};
  const http = obj(hc.http_health_check);
  if (!http) {
    p.warn('health_checks[0]', 'only HTTP health checks are supported: ignored');
    return undefined;
  }
  const out: Fragment = { path: str(http.path) || '/' };
  const i = durationMs(hc.interval);
  if (i !== undefined && i >= 100) out.interval = i;
  const t = durationMs(hc.timeout);
  if (t !== undefined && t >= 1) out.timeout = t;
  const h = wrapped(hc.healthy_threshold);
  if (h) out.healthyThreshold = h;
  const u = wrapped(hc.unhealthy_threshold);
  if (u) out.unhealthyThreshold = u;
  return out;
}

// ---- EDS ----------------------------------------------------------------------------------------

function endpoints(name: string, cla: Obj, p: Problems, prefix = ''): EndpointsModel {
  const localities: LocalityModel[] = [];
  arr(cla.endpoints).forEach((l, i) => {
    const lo = obj(l) ?? {};
    const lp = `${prefix}endpoints[${i}]`;
    const loc = obj(lo.locality) ?? {};
    const weight = wrapped(lo.load_balancing_weight);
    const locality: LocalityModel = {
      zone: str(loc.zone) || undefined,
      region: str(loc.region) || undefined,
      subZone: str(loc.sub_zone) || undefined,
      // A locality without a weight gets none of the traffic when weights are honoured (Envoy).
      weight: weight ?? 0,
      priority: num(lo.priority) ?? 0,
      endpoints: [],
    };
    if (lo.leds_cluster_locality_config !== undefined)
      p.error(`${lp}.leds_cluster_locality_config`, 'LEDS is not supported');
    arr(lo.lb_endpoints).forEach((e, j) => {
      const eo = obj(e) ?? {};
      const ep = `${lp}.lb_endpoints[${j}]`;
      const sa = obj(obj(obj(eo.endpoint)?.address)?.socket_address);
      if (!sa) {
        p.error(
          `${ep}.endpoint.address`,
          'is not a socket_address (pipes and named endpoints are not supported)',
        );
        return;
      }
      const host = str(sa.address) ?? '';
      const port = num(sa.port_value) ?? 0;
      if (host === '') {
        p.error(`${ep}.endpoint.address.socket_address.address`, 'is empty');
        return;
      }
      if (sa.named_port !== undefined || port < 1 || port > 65535) {
        p.error(`${ep}.endpoint.address.socket_address.port_value`, `${show(port)} is not a port (1-65535)`);
        return;
      }
      const w = wrapped(eo.load_balancing_weight);
      if (w === 0) {
        p.error(`${ep}.load_balancing_weight`, 'is 0 (it must be at least 1)');
        return;
      }
      locality.endpoints.push({ host, port, weight: w ?? 1, health: str(eo.health_status) ?? 'UNKNOWN' });
    });
    localities.push(locality);
  });
  const drops = arr(obj(cla.policy)?.drop_overloads);
  if (drops.length > 0) p.warn(`${prefix}policy.drop_overloads`, 'is not supported: no request is dropped');
  if (
    arr(cla.named_endpoints).length > 0 ||
    (isObj(cla.named_endpoints) && Object.keys(cla.named_endpoints).length)
  )
    p.warn(`${prefix}named_endpoints`, 'is not supported: ignored');
  return { name, localities };
}

/** An EndpointSpec as discovery hands it to the endpoint set. */
export function spec(host: string, port: number, weight: number, zone: string | undefined): EndpointSpec {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return { address: `${h}:${port}`, host, port, labels: {}, weight, zone };
}

/** Envoy's default overprovisioning factor: a priority keeps all traffic while 1/1.4 of it is healthy. */
const USABLE = new Set(['UNKNOWN', 'HEALTHY']);

/**
 * The endpoints to balance over, from a ClusterLoadAssignment: the lowest priority that has a
 * usable endpoint (HEALTHY or UNKNOWN; the others are left out), each endpoint weighted by its own
 * weight and, when the cluster honours locality weights, by its locality's share.
 */
export function endpointSpecs(m: EndpointsModel, localityWeighted: boolean): EndpointSpec[] {
  const priorities = [...new Set(m.localities.map((l) => l.priority))].sort((a, b) => a - b);
  for (const prio of priorities) {
    const locs = m.localities
      .filter((l) => l.priority === prio)
      .map((l) => ({ ...l, endpoints: l.endpoints.filter((e) => USABLE.has(e.health)) }))
      .filter((l) => l.endpoints.length > 0 && (!localityWeighted || l.weight > 0));
    if (locs.length === 0) continue;
    const out = new Map<string, EndpointSpec>();
    const totalLocality = locs.reduce((a, l) => a + l.weight, 0);
    for (const l of locs) {
      const sum = l.endpoints.reduce((a, e) => a + e.weight, 0);
      for (const e of l.endpoints) {
        // Weights stay whole numbers: the locality share scaled to 10,000 parts.
        const w = localityWeighted
          ? Math.max(1, Math.round((10_000 * l.weight * e.weight) / (totalLocality * sum)))
          : e.weight;
        const s = spec(e.host, e.port, w, l.zone);
        const prev = out.get(s.address);
        if (prev) prev.weight += w;
        else out.set(s.address, s);
      }
    }
    return [...out.values()];
  }
  return [];
}

// ---- checks -------------------------------------------------------------------------------------

interface SafeParser {
  safeParse(v: unknown, opts?: object): { success: true } | { success: false; error: { issues: unknown[] } };
}

/** Checks a generated fragment with meshwork's own schema; each issue becomes an error. */
function checkWith(schema: SafeParser, value: unknown, path: string, p: Problems): void {
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return;
  for (const issue of formatIssues(r.error.issues as never))
    p.error(issue.path ? `${path} → ${issue.path}` : path, issue.message);
}
