/**
 * 3scale mapping rules: method + path pattern → metric and delta. As APIcast matches them:
 * a pattern matches the path as a prefix (`/v1` matches `/v1/word`), unless it ends with `$`;
 * `{name}` matches one path segment's worth of characters; `?name={value}` requires the query
 * parameter (`?name=value`: with that value). Every matching rule counts (in order), until one
 * marked `last` matches. Parameters are read from the query string only (not from a body).
 */
import { queryParam } from './keys.ts';
import type { MappingRule } from './schema.ts';

export interface Usage {
  metric: string;
  delta: number;
}

interface CompiledRule {
  readonly method: string | undefined;
  readonly re: RegExp;
  readonly query: readonly { name: string; value: string | undefined }[];
  readonly metric: string;
  readonly delta: number;
  readonly last: boolean;
}

const PLACEHOLDER = /^\{[^{}]*\}$/;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function compileRule(r: MappingRule): CompiledRule {
  const q = r.pattern.indexOf('?');
  let path = q < 0 ? r.pattern : r.pattern.slice(0, q);
  const exact = path.endsWith('$');
  if (exact) path = path.slice(0, -1);
  const source = path
    .split(/(\{[^{}]*\})/)
    .map((part) => (PLACEHOLDER.test(part) ? '[^/]+' : escapeRegex(part)))
    .join('');
  const query: { name: string; value: string | undefined }[] = [];
  if (q >= 0)
    for (const pair of r.pattern.slice(q + 1).split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      const value = eq < 0 ? undefined : pair.slice(eq + 1);
      query.push({ name, value: value === undefined || PLACEHOLDER.test(value) ? undefined : value });
    }
  return {
    method: r.method,
    re: new RegExp(`^${source}${exact ? '$' : ''}`),
    query,
    metric: r.metric,
    delta: r.delta,
    last: r.last === true,
  };
}

export interface MappingRules {
  /** What the request counts, metrics summed; undefined when no rule matches. */
  usage(method: string, path: string): Usage[] | undefined;
}

export function compileMappingRules(rules: readonly MappingRule[]): MappingRules {
  const compiled = rules.map(compileRule);
  return {
    usage(method, full) {
      const q = full.indexOf('?');
      const path = q < 0 ? full : full.slice(0, q);
      let out: Usage[] | undefined;
      for (const r of compiled) {
        if (r.method !== undefined && r.method !== method) continue;
        if (!r.re.test(path)) continue;
        let ok = true;
        for (const p of r.query) {
          const v = queryParam(full, p.name);
          if (v === undefined || (p.value !== undefined && v !== p.value)) {
            ok = false;
            break;
          }
        }
        if (!ok) continue;
        out ??= [];
        const same = out.find((u) => u.metric === r.metric);
        if (same) same.delta += r.delta;
        else out.push({ metric: r.metric, delta: r.delta });
        if (r.last) break;
      }
      return out;
    },
  };
}

/** No mapping rules: every request counts one `hits`. */
export const HITS: readonly Usage[] = Object.freeze([Object.freeze({ metric: 'hits', delta: 1 })]);
