/**
 * The routing pieces put together for one service, compiled once per config: match the
 * request, pick a destination, and apply the route's header and URI changes. This is what a
 * routing layer calls per request; it is synchronous and allocates nothing (decisions are
 * precomputed per matched block and destination, and shared).
 */

import { DEFAULT_PATH_OPTIONS, normalizeTarget, type PathOptions, type PathRejection } from '../http/path.ts';
import { type CompiledCors, compileCors } from './cors.ts';
import { compileDestinations, type DestinationPicker, type Random } from './destination.ts';
import { compileLocal, type LocalResponder } from './local.ts';
import { compileRoutes, type RouteHit, type RouteRequest } from './match.ts';
import {
  applyHeaderOps,
  type CompiledHeaderOps,
  compileHeaderOps,
  jsReplacement,
  type MutableHeaders,
  rewritePath,
  rewritePathRegex,
} from './mutate.ts';
import { compileSearchRegex } from './regex.ts';
import type { HttpRoute, RouteDestination } from './schema.ts';

interface OpsPair {
  readonly request: CompiledHeaderOps | undefined;
  readonly response: CompiledHeaderOps | undefined;
}

export interface CompiledRoute {
  readonly config: HttpRoute;
  readonly index: number;
  readonly picker: DestinationPicker;
  /** Route-level header operations. */
  readonly headers: OpsPair;
  /** Destination-level header operations (only destinations that have some). */
  readonly destinationHeaders: ReadonlyMap<RouteDestination, OpsPair>;
  /** `redirect` / `directResponse`: the mesh answers by itself; undefined for a forwarding route. */
  readonly local: LocalResponder | undefined;
  /** `corsPolicy`, compiled. */
  readonly cors: CompiledCors | undefined;
  /** `rewrite.uriRegexRewrite`, compiled (global, not anchored; `rewrite` in JavaScript's syntax). */
  readonly regexRewrite: { readonly re: RegExp; readonly rewrite: string } | undefined;
}

/** The destination a local-answer route (redirect, directResponse) "picks": its own service. */
const LOCAL_DESTINATION: RouteDestination = Object.freeze({ destination: Object.freeze({}) });

export interface RouteDecision {
  readonly route: CompiledRoute;
  readonly hit: RouteHit;
  readonly destination: RouteDestination;
}

export interface Router {
  /** Number of routes; 0 means the service has no `http` routes (send to all endpoints). */
  readonly size: number;
  readonly routes: readonly CompiledRoute[];
  /**
   * The route and destination for a request, or undefined when no route matches (only possible
   * when size > 0: Istio then answers 404 "no route").
   */
  route(req: RouteRequest, random?: Random): RouteDecision | undefined;
  /**
   * The path to match and send, normalized as the mesh's `pathNormalization` says (dot segments,
   * percent-encoding, slashes; the query string is kept), or why it cannot be. Returns the same
   * string when the path is already canonical.
   */
  normalize(path: string): string | PathRejection;
}

function ops(h: HttpRoute['headers']): OpsPair {
  return { request: compileHeaderOps(h?.request), response: compileHeaderOps(h?.response) };
}

export function compileRouter(
  http: readonly HttpRoute[] | undefined,
  paths: PathOptions = DEFAULT_PATH_OPTIONS,
  ownLabels?: Readonly<Record<string, string>>,
): Router {
  const list = http ?? [];
  const table = compileRoutes(list, ownLabels);
  const routes: CompiledRoute[] = list.map((config, index) => {
    const destinationHeaders = new Map<RouteDestination, OpsPair>();
    for (const d of config.route ?? []) {
      const p = ops(d.headers);
      if (p.request || p.response) destinationHeaders.set(d, p);
    }
    const rr = config.rewrite?.uriRegexRewrite;
    return {
      config,
      index,
      picker: compileDestinations(config.route ?? [LOCAL_DESTINATION]),
      headers: ops(config.headers),
      destinationHeaders,
      local: compileLocal(config),
      cors: config.corsPolicy ? compileCors(config.corsPolicy) : undefined,
      regexRewrite: rr ? { re: compileSearchRegex(rr.match), rewrite: jsReplacement(rr.rewrite) } : undefined,
    };
  });
  // Decisions are precomputed per (hit, destination), so routing a request allocates nothing.
  const decisions = new Map<RouteHit, readonly RouteDecision[]>();
  const decisionsFor = (hit: RouteHit): readonly RouteDecision[] => {
    let d = decisions.get(hit);
    if (d === undefined) {
      const route = routes[hit.index] as CompiledRoute;
      d = route.picker.destinations.map((destination) => Object.freeze({ route, hit, destination }));
      decisions.set(hit, d);
    }
    return d;
  };
  return {
    size: list.length,
    routes,
    route(req: RouteRequest, random?: Random): RouteDecision | undefined {
      const hit = table.match(req);
      if (hit === undefined) return undefined;
      const route = routes[hit.index] as CompiledRoute;
      return decisionsFor(hit)[route.picker.pickIndex(random)];
    },
    normalize(path: string): string | PathRejection {
      return normalizeTarget(path, paths);
    },
  };
}

/**
 * Applies the decision to the outgoing request: route then destination header operations,
 * `rewrite.authority` (the `host` header) and `rewrite.uri`. Mutates `headers`; returns the
 * path to send (the same string when unchanged).
 */
export function applyRequestRoute(d: RouteDecision, path: string, headers: MutableHeaders): string {
  applyHeaderOps(d.route.headers.request, headers);
  const dest = d.route.destinationHeaders.get(d.destination);
  if (dest !== undefined) applyHeaderOps(dest.request, headers);
  const rewrite = d.route.config.rewrite;
  if (rewrite === undefined) return path;
  if (rewrite.authority !== undefined) headers.host = rewrite.authority;
  const rr = d.route.regexRewrite;
  if (rr !== undefined) return rewritePathRegex(path, rr.re, rr.rewrite);
  return rewrite.uri === undefined ? path : rewritePath(path, rewrite.uri, d.hit.uriPrefix);
}

/** Applies route then destination `headers.response` operations to the response headers. */
export function applyResponseRoute(d: RouteDecision, headers: MutableHeaders): void {
  applyHeaderOps(d.route.headers.response, headers);
  const dest = d.route.destinationHeaders.get(d.destination);
  if (dest !== undefined) applyHeaderOps(dest.response, headers);
}
