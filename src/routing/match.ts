/**
 * Route matching: a route list is compiled once (regexes included) into a table; each request
 * walks it and gets the first route whose match blocks accept it. Blocks are ORed, conditions
 * inside a block ANDed; a route without match blocks matches every request.
 *
 * Semantics follow Envoy (what Istio programs):
 * - `uri` is compared with the path without its query string, as sent (not decoded);
 * - regexes are full matches (RE2 syntax, see regex.ts);
 * - a header with several values is matched against the values joined with ",";
 * - `{}` as a header or query condition means "present"; `withoutHeaders` inverts a header
 *   condition (an absent header passes);
 * - `ignoreUriCase` applies to exact and prefix uri matches, not to regexes (as Istio documents);
 * - query parameters are decoded (URLSearchParams) and the first value counts.
 * The hot path allocates nothing for routes without query conditions: the hit returned is
 * precompiled per (route, block).
 */
import { compileRegex } from './regex.ts';
import type { HttpRoute, MatchBlock, StringMatch } from './schema.ts';

/** What matching needs from a request. Header names are lowercase. */
export interface RouteRequest {
  readonly method: string;
  /** The path with its query string (`/a/b?x=1`). */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

type Test = (value: string) => boolean;

/** The result of a match: precompiled, shared between requests. */
export interface RouteHit<R extends HttpRoute = HttpRoute> {
  readonly route: R;
  /** Index of the route in its list. */
  readonly index: number;
  /** Index of the match block that matched; -1 for a route without match blocks. */
  readonly block: number;
  /** When the matching block's uri condition is a prefix: that prefix (for rewrite.uri). */
  readonly uriPrefix: string | undefined;
}

interface CompiledBlock<R extends HttpRoute> {
  readonly hit: RouteHit<R>;
  readonly uri: Test | undefined;
  readonly method: Test | undefined;
  readonly headers: readonly (readonly [string, Test])[];
  readonly withoutHeaders: readonly (readonly [string, Test])[];
  readonly query: readonly (readonly [string, Test])[];
}

export interface RouteTable<R extends HttpRoute = HttpRoute> {
  readonly size: number;
  /** The first route matching `req`, or undefined. */
  match(req: RouteRequest): RouteHit<R> | undefined;
}

const always: Test = () => true;

function compileStringMatch(m: StringMatch, ignoreCase = false): Test {
  if (m.exact !== undefined) {
    const want = ignoreCase ? m.exact.toLowerCase() : m.exact;
    return ignoreCase ? (v) => v.length === want.length && v.toLowerCase() === want : (v) => v === want;
  }
  if (m.prefix !== undefined) {
    const want = ignoreCase ? m.prefix.toLowerCase() : m.prefix;
    const n = want.length;
    return ignoreCase
      ? (v) => v.length >= n && v.slice(0, n).toLowerCase() === want
      : (v) => v.startsWith(want);
  }
  if (m.regex !== undefined) {
    const re = compileRegex(m.regex);
    return (v) => re.test(v);
  }
  return always;
}

function compileRecord(rec: Record<string, StringMatch> | undefined): (readonly [string, Test])[] {
  if (rec === undefined) return [];
  return Object.entries(rec).map(([k, m]) => [k.toLowerCase(), compileStringMatch(m)] as const);
}

function compileBlock<R extends HttpRoute>(
  route: R,
  index: number,
  blockIndex: number,
  block: MatchBlock | undefined,
): CompiledBlock<R> {
  const uriPrefix = block?.uri?.prefix;
  return {
    hit: Object.freeze({ route, index, block: blockIndex, uriPrefix }),
    uri: block?.uri ? compileStringMatch(block.uri, block.ignoreUriCase === true) : undefined,
    method: block?.method ? compileStringMatch(block.method) : undefined,
    headers: compileRecord(block?.headers),
    withoutHeaders: compileRecord(block?.withoutHeaders),
    query: compileRecord(block?.queryParams),
  };
}

function headerText(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}

/** Compiles an ordered route list. Throws on a bad regex (the schema has refused those already). */
export function compileRoutes<R extends HttpRoute>(routes: readonly R[] | undefined): RouteTable<R> {
  const blocks: CompiledBlock<R>[] = [];
  (routes ?? []).forEach((route, i) => {
    if (!route.match || route.match.length === 0) blocks.push(compileBlock(route, i, -1, undefined));
    else
      route.match.forEach((b, j) => {
        blocks.push(compileBlock(route, i, j, b));
      });
  });
  const n = blocks.length;
  return {
    size: routes?.length ?? 0,
    match(req: RouteRequest): RouteHit<R> | undefined {
      if (n === 0) return undefined;
      const q = req.path.indexOf('?');
      const path = q < 0 ? req.path : req.path.slice(0, q);
      let params: URLSearchParams | undefined;
      outer: for (let i = 0; i < n; i++) {
        const b = blocks[i] as CompiledBlock<R>;
        if (b.uri !== undefined && !b.uri(path)) continue;
        if (b.method !== undefined && !b.method(req.method)) continue;
        for (const [name, test] of b.headers) {
          const v = headerText(req.headers[name]);
          if (v === undefined || !test(v)) continue outer;
        }
        for (const [name, test] of b.withoutHeaders) {
          const v = headerText(req.headers[name]);
          if (v !== undefined && test(v)) continue outer;
        }
        if (b.query.length > 0) {
          params ??= new URLSearchParams(q < 0 ? '' : req.path.slice(q + 1));
          for (const [name, test] of b.query) {
            const v = params.get(name);
            if (v === null || !test(v)) continue outer;
          }
        }
        return b.hit;
      }
      return undefined;
    },
  };
}
