/**
 * Header and URI mutation for a matched route.
 *
 * Header operations run in Envoy's order: remove, then set (replace), then add (append a value).
 * Route-level operations run before the chosen destination's, so a destination's `set` wins.
 * Header names are lowercased once here; records are mutated in place (the pipeline owns a
 * fresh header record per request, and undici hands the response headers as a record).
 */
import type { RouteHit } from './match.ts';
import type { HeaderOps } from './schema.ts';

export type MutableHeaders = Record<string, string | string[]>;

export interface CompiledHeaderOps {
  readonly remove: readonly string[];
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
}

/** Compiles one `headers.request` or `headers.response` block; undefined when it does nothing. */
export function compileHeaderOps(ops: HeaderOps | undefined): CompiledHeaderOps | undefined {
  if (ops === undefined) return undefined;
  const lower = (rec: Record<string, string> | undefined) =>
    Object.entries(rec ?? {}).map(([k, v]) => [k.toLowerCase(), v] as const);
  const compiled = {
    remove: (ops.remove ?? []).map((k) => k.toLowerCase()),
    set: lower(ops.set),
    add: lower(ops.add),
  };
  return compiled.remove.length + compiled.set.length + compiled.add.length === 0 ? undefined : compiled;
}

export function applyHeaderOps(ops: CompiledHeaderOps | undefined, headers: MutableHeaders): void {
  if (ops === undefined) return;
  for (const name of ops.remove) delete headers[name];
  for (const [name, value] of ops.set) headers[name] = value;
  for (const [name, value] of ops.add) {
    // Own keys only: undici's response headers are a plain object, where `constructor` is inherited.
    const prev = Object.hasOwn(headers, name) ? headers[name] : undefined;
    if (prev === undefined) headers[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else headers[name] = [prev, value];
  }
}

/**
 * The path to send after `rewrite.uri`, keeping the query string. As in Istio (Envoy's
 * prefix_rewrite): when the block that matched has a uri prefix, only that prefix is replaced
 * (`/old/x` with prefix `/old` and rewrite `/new` gives `/new/x`); a block without a uri condition
 * matches the prefix "/" (`/x` with rewrite `/new/` gives `/new/x`); after an exact or regex
 * match the whole path is replaced.
 */
export function rewritePath(path: string, uri: string, matchedPrefix: string | undefined): string {
  const q = path.indexOf('?');
  const query = q < 0 ? '' : path.slice(q);
  if (matchedPrefix === undefined) return uri + query;
  const bare = q < 0 ? path : path.slice(0, q);
  return uri + bare.slice(matchedPrefix.length) + query;
}

/**
 * RE2's substitution syntax (`\1` for a group, as Istio documents `uriRegexRewrite.rewrite`) in
 * JavaScript's (`$1`; a literal `$` becomes `$$`). Done once, at compile time.
 */
export function jsReplacement(rewrite: string): string {
  return rewrite
    .replace(/\$/g, '$$$$')
    .replace(/\\([0-9])/g, (_m, n: string) => (n === '0' ? '$&' : `$${n}`));
}

/**
 * `rewrite.uriRegexRewrite` (Envoy's regex_rewrite): every match of `re` (global) in the path,
 * not the query string, replaced by `replacement` (see jsReplacement). The query string is kept.
 */
export function rewritePathRegex(path: string, re: RegExp, replacement: string): string {
  const q = path.indexOf('?');
  const bare = q < 0 ? path : path.slice(0, q);
  return bare.replace(re, replacement) + (q < 0 ? '' : path.slice(q));
}

/** `rewritePath` for a hit, or the path unchanged when the route has no uri rewrite. */
export function rewriteHitPath(hit: RouteHit, path: string): string {
  const uri = hit.route.rewrite?.uri;
  return uri === undefined ? path : rewritePath(path, uri, hit.uriPrefix);
}
