/**
 * Route matching: a route list is compiled once (regexes included) into a table; each request
 * walks it and gets the first route whose match blocks accept it. Blocks are ORed, conditions
 * inside a block ANDed; a route without match blocks matches every request.
 *
 * Semantics follow Envoy (what Istio programs):
 * - `uri` is compared with the path without its query string, not decoded (the routing layer
 *   has normalized it first: dot segments, unreserved escapes, slashes; see router.normalize);
 * - regexes are full matches (RE2 syntax, see regex.ts);
 * - a header with several values is matched against the values joined with ",";
 * - `{}` as a header or query condition means "present"; `withoutHeaders` inverts a header
 *   condition (an absent header passes);
 * - `ignoreUriCase` applies to exact and prefix uri matches, not to regexes (as Istio documents);
 * - query parameters are decoded (as URLSearchParams does) and the first value counts.
 * The hot path allocates nothing for routes without query conditions (or regexes on a path
 * with a query string): the hit returned is precompiled per (route, block), and each header
 * name is read at most once per request through a per-table cache.
 */
import { compileRegex } from './regex.ts';
import type { HttpRoute, MatchBlock, StringMatch } from './schema.ts';

/** What matching needs from a request. Header names are lowercase. */
export interface RouteRequest {
  readonly method: string;
  /** The path with its query string (`/a/b?x=1`). */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The request URL's origin (`http://svc:8080`), for `scheme` and `port` conditions. */
  readonly origin?: unknown;
}

/** `http` or `https`, from the request's origin (undici's `origin` is a string or a URL). */
export function requestScheme(origin: unknown): string {
  const o = origin instanceof URL ? origin.protocol : typeof origin === 'string' ? origin : '';
  return o.startsWith('https:') ? 'https' : 'http';
}

/** The request URL's port: the one written, else the scheme's default (80, 443). */
export function requestPort(origin: unknown): number {
  if (origin instanceof URL)
    return origin.port ? Number(origin.port) : origin.protocol === 'https:' ? 443 : 80;
  const s = typeof origin === 'string' ? origin : '';
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:\[[^\]]*\]|[^/:?#]*)(?::(\d+))?/i.exec(s);
  if (m?.[1]) return Number(m[1]);
  return s.startsWith('https:') ? 443 : 80;
}

/**
 * One compiled string condition. A plain record tested by one function (not a closure per
 * condition) keeps the call site monomorphic, which matters when 100 routes are walked.
 */
interface Cond {
  /** 0 exact, 1 prefix, 2 regex, 3 present. */
  readonly kind: 0 | 1 | 2 | 3;
  readonly value: string;
  readonly re: RegExp | undefined;
  readonly ignoreCase: boolean;
}

function test(c: Cond, v: string): boolean {
  switch (c.kind) {
    case 0:
      return c.ignoreCase ? v.length === c.value.length && v.toLowerCase() === c.value : v === c.value;
    case 1:
      return c.ignoreCase
        ? v.length >= c.value.length && v.slice(0, c.value.length).toLowerCase() === c.value
        : v.startsWith(c.value);
    case 2:
      return (c.re as RegExp).test(v);
    default:
      return true;
  }
}

/** The result of a match: precompiled, shared between requests. */
export interface RouteHit<R extends HttpRoute = HttpRoute> {
  readonly route: R;
  /** Index of the route in its list. */
  readonly index: number;
  /** Index of the match block that matched; -1 for a route without match blocks. */
  readonly block: number;
  /**
   * The prefix `rewrite.uri` replaces: the block's uri prefix, or "/" for a block without a uri
   * condition and a route without match blocks (Istio gives them a default prefix "/" match);
   * undefined after an exact or regex uri match (the whole path is replaced).
   */
  readonly uriPrefix: string | undefined;
}

interface CompiledBlock<R extends HttpRoute> {
  readonly hit: RouteHit<R>;
  readonly uri: Cond | undefined;
  readonly scheme: Cond | undefined;
  readonly port: number | undefined;
  readonly method: Cond | undefined;
  readonly headers: readonly Named[];
  readonly withoutHeaders: readonly Named[];
  readonly query: readonly Named[];
}

export interface RouteTable<R extends HttpRoute = HttpRoute> {
  readonly size: number;
  /** The first route matching `req`, or undefined. */
  match(req: RouteRequest): RouteHit<R> | undefined;
}

interface Named {
  readonly name: string;
  readonly cond: Cond;
  /** Headers only: index in the table's list of header names (each looked up once per request). */
  slot: number;
}

function compileStringMatch(m: StringMatch, ignoreCase = false): Cond {
  if (m.exact !== undefined) {
    return { kind: 0, value: ignoreCase ? m.exact.toLowerCase() : m.exact, re: undefined, ignoreCase };
  }
  if (m.prefix !== undefined) {
    return { kind: 1, value: ignoreCase ? m.prefix.toLowerCase() : m.prefix, re: undefined, ignoreCase };
  }
  if (m.regex !== undefined) return { kind: 2, value: m.regex, re: compileRegex(m.regex), ignoreCase: false };
  return { kind: 3, value: '', re: undefined, ignoreCase: false };
}

function compileRecord(rec: Record<string, StringMatch> | undefined): Named[] {
  if (rec === undefined) return [];
  return Object.entries(rec).map(([k, m]) => ({
    name: k.toLowerCase(),
    cond: compileStringMatch(m),
    slot: -1,
  }));
}

/** First value of each query parameter, decoded as URLSearchParams does. */
function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    if (end > start) {
      const eq = query.indexOf('=', start);
      const split = eq >= 0 && eq < end;
      const name = decode(query.slice(start, split ? eq : end));
      if (!out.has(name)) out.set(name, split ? decode(query.slice(eq + 1, end)) : '');
    }
    start = end + 1;
  }
  return out;
}

function decode(s: string): string {
  if (s.indexOf('+') >= 0) s = s.replaceAll('+', ' ');
  if (s.indexOf('%') < 0) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // malformed escapes stay as they are
  }
}

function compileBlock<R extends HttpRoute>(
  route: R,
  index: number,
  blockIndex: number,
  block: MatchBlock | undefined,
): CompiledBlock<R> {
  // Istio: a block without a uri condition (or a route without blocks) matches prefix "/".
  const uriPrefix = block?.uri === undefined ? '/' : block.uri.prefix;
  return {
    hit: Object.freeze({ route, index, block: blockIndex, uriPrefix }),
    uri: block?.uri ? compileStringMatch(block.uri, block.ignoreUriCase === true) : undefined,
    scheme: block?.scheme ? compileStringMatch(block.scheme) : undefined,
    port: block?.port,
    method: block?.method ? compileStringMatch(block.method) : undefined,
    headers: compileRecord(block?.headers),
    withoutHeaders: compileRecord(block?.withoutHeaders),
    query: compileRecord(block?.queryParams),
  };
}

/**
 * An exact or prefix uri condition against the path part (`end` characters) of `full`, without
 * slicing it off. Regexes are tested by the caller on the sliced path.
 */
function testUri(c: Cond, full: string, end: number): boolean {
  const n = c.value.length;
  switch (c.kind) {
    case 0:
      if (end !== n) return false;
      return c.ignoreCase ? full.slice(0, n).toLowerCase() === c.value : full.startsWith(c.value);
    case 1:
      if (n > end) return false;
      return c.ignoreCase ? full.slice(0, n).toLowerCase() === c.value : full.startsWith(c.value);
    default:
      return true;
  }
}

function headerText(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}

/** True when `own` has every label of `wanted` (`match.sourceLabels` against this workload's labels). */
function sourceMatches(
  wanted: Readonly<Record<string, string>>,
  own: Readonly<Record<string, string>> | undefined,
) {
  if (own === undefined) return false;
  for (const k of Object.keys(wanted)) if (!Object.hasOwn(own, k) || own[k] !== wanted[k]) return false;
  return true;
}

/**
 * Compiles an ordered route list. Throws on a bad regex (the schema has refused those already).
 * `ownLabels`: this workload's labels; a block whose `sourceLabels` they do not include never
 * matches (the caller is always this process, so it is decided here, once).
 */
export function compileRoutes<R extends HttpRoute>(
  routes: readonly R[] | undefined,
  ownLabels?: Readonly<Record<string, string>>,
): RouteTable<R> {
  const blocks: CompiledBlock<R>[] = [];
  (routes ?? []).forEach((route, i) => {
    if (!route.match || route.match.length === 0) blocks.push(compileBlock(route, i, -1, undefined));
    else
      route.match.forEach((b, j) => {
        if (b.sourceLabels !== undefined && !sourceMatches(b.sourceLabels, ownLabels)) return;
        blocks.push(compileBlock(route, i, j, b));
      });
  });
  const n = blocks.length;
  // Every header name any block tests gets a slot: a request looks each name up at most once.
  const headerNames: string[] = [];
  for (const b of blocks) {
    for (const h of [...b.headers, ...b.withoutHeaders]) {
      let slot = headerNames.indexOf(h.name);
      if (slot < 0) slot = headerNames.push(h.name) - 1;
      h.slot = slot;
    }
  }
  const slots = headerNames.length;
  // Per-table scratch, reused by every call (matching is synchronous and calls no user code):
  // a header value is valid for this request when its generation stamp is the current one.
  const cached: (string | undefined)[] = new Array(slots).fill(undefined);
  const stamp = new Uint32Array(slots);
  let generation = 0;
  const header = (h: Named, headers: RouteRequest['headers']): string | undefined => {
    if (stamp[h.slot] === generation) return cached[h.slot];
    const v = headerText(headers[h.name]);
    cached[h.slot] = v;
    stamp[h.slot] = generation;
    return v;
  };
  return {
    size: routes?.length ?? 0,
    match(req: RouteRequest): RouteHit<R> | undefined {
      if (n === 0) return undefined;
      generation = (generation + 1) >>> 0 || 1;
      const full = req.path;
      const q = full.indexOf('?');
      const end = q < 0 ? full.length : q;
      let path: string | undefined;
      let params: Map<string, string> | undefined;
      outer: for (let i = 0; i < n; i++) {
        const b = blocks[i] as CompiledBlock<R>;
        if (b.uri !== undefined) {
          if (b.uri.kind === 2) {
            path ??= q < 0 ? full : full.slice(0, q);
            if (!(b.uri.re as RegExp).test(path)) continue;
          } else if (!testUri(b.uri, full, end)) continue;
        }
        if (b.method !== undefined && !test(b.method, req.method)) continue;
        if (b.scheme !== undefined && !test(b.scheme, requestScheme(req.origin))) continue;
        if (b.port !== undefined && b.port !== requestPort(req.origin)) continue;
        for (let j = 0; j < b.headers.length; j++) {
          const h = b.headers[j] as Named;
          const v = header(h, req.headers);
          if (v === undefined || !test(h.cond, v)) continue outer;
        }
        for (let j = 0; j < b.withoutHeaders.length; j++) {
          const h = b.withoutHeaders[j] as Named;
          const v = header(h, req.headers);
          if (v !== undefined && test(h.cond, v)) continue outer;
        }
        if (b.query.length > 0) {
          params ??= parseQuery(q < 0 ? '' : full.slice(q + 1));
          for (let j = 0; j < b.query.length; j++) {
            const p = b.query[j] as Named;
            const v = params.get(p.name);
            if (v === undefined || !test(p.cond, v)) continue outer;
          }
        }
        return b.hit;
      }
      return undefined;
    },
  };
}
