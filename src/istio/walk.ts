/**
 * The walker fromIstio converts documents with: small handlers composed into one table per Istio
 * message (`obj(fields, refused)`), each taking a YAML value and returning what goes into the
 * meshwork config, or SKIP. Problems are collected with their full path, never thrown one by one.
 *
 * The tables are data as well as code: `obj`, `list` and `record` keep what they were built from
 * (`describe(handler)`), so tests compare them with the zod schemas of the meshwork config and
 * with Istio's protos, and docs/istio-conformance.md is generated from them.
 */

import { OBJECT_MEMBERS } from '../config/reserved.ts';
import type { ConfigIssue } from '../errors.ts';

export interface IstioProblem {
  /** `VirtualService/reviews spec.http[0].corsPolicy`. */
  readonly path: string;
  readonly message: string;
}

/** Per-document state while converting. */
export interface Cx {
  readonly label: string;
  readonly namespace: string;
  readonly fqdn: boolean;
  readonly pinnedNamespace: string | undefined;
  readonly problems: IstioProblem[];
  /** Invalid input (not merely unsupported): thrown as a MeshworkConfigError even when not strict. */
  readonly invalid: ConfigIssue[];
  /** Accepted with a caveat (both modes): passed to options.warn and returned in result.warnings. */
  readonly notes: IstioProblem[];
  /** This workload's namespace (FromIstioOptions.namespace, default "default"). */
  readonly here: string;
  /** VirtualService being read: its routes without `match[].gateways` apply to in-mesh calls. */
  meshDefault: boolean;
  /**
   * Set while the hosts of a VirtualService (`spec.hosts`) or DestinationRule (`spec.host`) are
   * read: wildcard hosts are collected here, to be matched against the known services at the end.
   */
  wildcards: string[] | undefined;
  /** VirtualServices without hosts (delegates), by `namespace/name`, for `http[].delegate`. */
  readonly delegates: ReadonlyMap<string, Record<string, unknown>>;
  /** Where Kubernetes secrets named by `credentialName` are mounted (FromIstioOptions.credentialsDir). */
  readonly credentialsDir: string;
  /** This workload's labels (FromIstioOptions.workloadLabels), when given. */
  readonly workloadLabels: Readonly<Record<string, string>> | undefined;
}

export function problem(cx: Cx, path: string, message: string): void {
  cx.problems.push({ path: `${cx.label} ${path}`, message });
}

export function invalid(cx: Cx, path: string, message: string): void {
  cx.invalid.push({ path: `fromIstio ${cx.label} ${path}`, message });
}

/** Accepted, with something the user should know (a deprecated field, an unreachable route). */
export function note(cx: Cx, path: string, message: string): void {
  cx.notes.push({ path: `${cx.label} ${path}`, message });
}

/** A key named like an Object.prototype member is never an Istio field: refused, not reported as unsupported. */
export function builtinKey(cx: Cx, path: string): void {
  invalid(cx, path, 'is not an Istio field (it is the name of a JavaScript built-in)');
}

export function show(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return String(v);
  }
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export const SKIP = Symbol('skip');
export type Handler = (value: unknown, path: string, cx: Cx) => unknown;

/**
 * What a handler is, for the tests and the conformance table:
 * - `object`: an Istio message; `fields` are carried, `refused` are reported with their reason;
 * - `list` / `record`: a repeated field or a map of `item`;
 * - `value`: a scalar carried under the same name;
 * - `custom`: anything else (a field translated into other meshwork fields, or only some values
 *   accepted); `note` says what it becomes.
 */
export type Shape =
  | {
      kind: 'object';
      fields: Readonly<Record<string, Handler>>;
      refused: Readonly<Record<string, string>>;
      /** Fields that are read but not copied under their own name (translated). */
      translated: ReadonlySet<string>;
    }
  | { kind: 'list' | 'record'; item: Handler }
  | { kind: 'value' }
  | { kind: 'custom'; note: string; inner?: Handler | undefined; ignored?: boolean };

const SHAPES = new WeakMap<Handler, Shape>();

export function describe(h: Handler): Shape {
  return SHAPES.get(h) ?? { kind: 'custom', note: '' };
}

function shaped<H extends Handler>(h: H, shape: Shape): H {
  SHAPES.set(h, shape);
  return h;
}

/**
 * A field read by hand (translated into other meshwork fields, or only some values accepted).
 * `note` says what it becomes; `inner` is the handler of its value when it has one.
 */
export function custom(note: string, h: Handler, inner?: Handler): Handler {
  return shaped(h, { kind: 'custom', note, inner });
}

/**
 * A field accepted with a warning and without effect in meshwork (it changes nothing the mesh
 * does, or cannot be applied from Node.js): listed as "ignored" in the conformance table.
 */
export function ignored(note: string, warn?: string): Handler {
  return shaped(
    (_v, path, cx) => {
      if (warn !== undefined) cx.notes.push({ path: `${cx.label} ${path}`, message: warn });
      return SKIP;
    },
    { kind: 'custom', note, ignored: true },
  );
}

export const scalar: Handler = shaped(
  (v, path, cx) => {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    problem(cx, path, `expected a string, number or boolean, got ${show(v)}`);
    return SKIP;
  },
  { kind: 'value' },
);

export const list = (item: Handler): Handler =>
  shaped(
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
    },
    { kind: 'list', item },
  );

export const record = (item: Handler): Handler =>
  shaped(
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
    },
    { kind: 'record', item },
  );

/**
 * A mapping with known fields. `refused` gives a reason for fields meshwork knows it does
 * not carry; any other unknown field is reported too. A field whose value is null is skipped.
 * `translated` names the fields whose handler does not copy them under their own name.
 */
export function obj(
  fields: Record<string, Handler>,
  refused: Record<string, string> = {},
  translated: readonly string[] = [],
): Handler {
  const h: Handler = (v, path, cx) => {
    if (!isObject(v)) {
      problem(cx, path, `expected a mapping, got ${show(v)}`);
      return SKIP;
    }
    const out: Record<string, unknown> = {};
    const before = cx.problems.length;
    for (const [k, x] of Object.entries(v)) {
      if (x === null || x === undefined) continue;
      const p = path ? `${path}.${k}` : k;
      if (OBJECT_MEMBERS.has(k)) {
        builtinKey(cx, p);
        continue;
      }
      const fh = Object.hasOwn(fields, k) ? fields[k] : undefined;
      if (fh === undefined) {
        problem(cx, p, `${Object.hasOwn(refused, k) ? refused[k] : 'is not supported'} (value ${show(x)})`);
        continue;
      }
      const r = fh(x, p, cx);
      if (r !== SKIP) out[k] = r;
    }
    // Emptied by skipped fields (non-strict): leave the whole mapping out rather than keep a
    // husk, e.g. a match block whose only condition was skipped must not turn into "match all".
    // (A mapping emptied by fields read into something else, such as `gateways: [mesh]`, stays.)
    if (Object.keys(out).length === 0 && cx.problems.length > before) return SKIP;
    return out;
  };
  return shaped(h, { kind: 'object', fields, refused, translated: new Set(translated) });
}
