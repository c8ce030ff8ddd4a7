/**
 * VirtualService delegation, as Istio merges it (pilot/pkg/model/virtualservice.go,
 * MergeHTTPRoutes): a route with `delegate: { name, namespace }` is replaced by the routes of
 * that VirtualService (one without hosts), each with the root route's match merged in (a
 * delegate's match must be narrower than the root's, else that route is dropped) and the root's
 * other fields where the delegate's route has none. One level only, as in Istio.
 */
import { isObject } from './walk.ts';

type Raw = Record<string, unknown>;

/** Root route fields a delegate route inherits when it does not set them (Istio's list). */
const INHERITED = [
  'rewrite',
  'directResponse',
  'timeout',
  'retries',
  'fault',
  'mirror',
  'mirrorPercent',
  'mirrorPercentage',
  'corsPolicy',
  'mirrors',
  'headers',
] as const;

function str(m: unknown, k: string): string {
  return isObject(m) && typeof m[k] === 'string' ? (m[k] as string) : '';
}

/** Istio's stringMatchConflict: is `leaf` not within `root`? */
function stringMatchConflict(root: unknown, leaf: unknown): boolean {
  if (!isObject(root) || !isObject(leaf)) return false;
  const [rr, rp, re] = [str(root, 'regex'), str(root, 'prefix'), str(root, 'exact')];
  const [lr, lp, le] = [str(leaf, 'regex'), str(leaf, 'prefix'), str(leaf, 'exact')];
  if (rr !== '' && (lr !== '' || lp !== '' || le !== '')) return true;
  if (lr !== '' && (rr !== '' || rp !== '' || re !== '')) return true;
  if (re !== '') return lp !== '' || le !== re;
  if (rp !== '') {
    if (lp !== '') return !lp.startsWith(rp);
    if (le !== '') return !le.startsWith(rp);
  }
  return true;
}

function recordOf(v: unknown): Raw {
  return isObject(v) ? v : {};
}

/** Istio's hasConflict: can `leaf` be merged under `root`? */
function hasConflict(root: Raw, leaf: Raw): boolean {
  for (const k of ['uri', 'scheme', 'method', 'authority'])
    if (root[k] !== undefined && leaf[k] !== undefined && stringMatchConflict(root[k], leaf[k])) return true;
  for (const k of ['headers', 'withoutHeaders', 'queryParams']) {
    const r = recordOf(root[k]);
    for (const [name, m] of Object.entries(recordOf(leaf[k])))
      if (Object.hasOwn(r, name) && stringMatchConflict(r[name], m)) return true;
  }
  if ((root.ignoreUriCase === true) !== (leaf.ignoreUriCase === true)) return true;
  if (typeof root.port === 'number' && typeof leaf.port === 'number' && root.port !== leaf.port) return true;
  if (
    typeof root.sourceNamespace === 'string' &&
    root.sourceNamespace !== '' &&
    leaf.sourceNamespace !== root.sourceNamespace
  )
    return true;
  const rl = recordOf(root.sourceLabels);
  for (const [k, v] of Object.entries(recordOf(leaf.sourceLabels)))
    if (Object.hasOwn(rl, k) && rl[k] !== v) return true;
  const rg = Array.isArray(root.gateways) ? root.gateways : [];
  const lg = Array.isArray(leaf.gateways) ? leaf.gateways : [];
  if (rg.length > 0 && lg.length > 0 && !lg.every((g) => rg.includes(g))) return true;
  return false;
}

/** Istio's mergeHTTPMatchRequest: the leaf's conditions, the root's where the leaf has none. */
function mergeMatch(root: Raw, leaf: Raw): Raw {
  const out: Raw = { ...leaf };
  const name = [str(root, 'name'), str(leaf, 'name')].filter((n) => n !== '').join('-');
  if (name !== '') out.name = name;
  for (const k of [
    'uri',
    'scheme',
    'method',
    'authority',
    'port',
    'sourceNamespace',
    'gateways',
    'statPrefix',
  ])
    if (out[k] === undefined && root[k] !== undefined) out[k] = root[k];
  for (const k of ['headers', 'withoutHeaders', 'queryParams', 'sourceLabels']) {
    const merged = { ...recordOf(root[k]), ...recordOf(leaf[k]) };
    if (Object.keys(merged).length > 0) out[k] = merged;
  }
  return out;
}

/** Istio's mergeHTTPMatchRequests; undefined on a conflict (the delegate route is dropped). */
function mergeMatches(root: unknown[], leaf: unknown[]): unknown[] | undefined {
  if (root.length === 0) return leaf;
  if (leaf.length === 0) return root;
  const out: unknown[] = [];
  for (const sub of leaf) {
    let found = false;
    for (const r of root) {
      if (hasConflict(recordOf(r), recordOf(sub))) continue;
      out.push(mergeMatch(recordOf(r), recordOf(sub)));
      found = true;
    }
    if (!found) return undefined;
  }
  return out.length === 0 ? undefined : out;
}

export interface Expanded {
  /** The merged route, as raw YAML. */
  route: Raw;
  /** Where it came from, for paths in messages: `delegate reviews-v2/http[1]`. */
  from: string;
}

/**
 * The routes a delegating route stands for, or a reason it cannot be expanded. `delegates` are
 * the VirtualServices without hosts, by `namespace/name`.
 */
export function expandDelegate(
  root: Raw,
  rootNamespace: string,
  delegates: ReadonlyMap<string, Raw>,
): { routes: Expanded[]; dropped: string[] } | string {
  const ref = root.delegate;
  if (!isObject(ref) || typeof ref.name !== 'string' || ref.name === '') return 'needs delegate.name';
  const ns = typeof ref.namespace === 'string' && ref.namespace !== '' ? ref.namespace : rootNamespace;
  const key = `${ns}/${ref.name}`;
  const target = delegates.get(key);
  if (target === undefined)
    return `names VirtualService ${key}, which is not in the input (or has hosts: a delegate has none)`;
  if (root.route !== undefined || root.redirect !== undefined)
    return 'is set together with route or redirect (Istio: delegate only when both are empty)';
  const http = Array.isArray(target.http) ? target.http : [];
  const routes: Expanded[] = [];
  const dropped: string[] = [];
  http.forEach((raw, i) => {
    const from = `delegate ${key} http[${i}]`;
    if (!isObject(raw)) return;
    if (raw.delegate !== undefined) {
      dropped.push(`${from}: delegates again (Istio supports one level only)`);
      return;
    }
    const match = mergeMatches(
      Array.isArray(root.match) ? root.match : [],
      Array.isArray(raw.match) ? raw.match : [],
    );
    if (match === undefined) {
      dropped.push(`${from}: its match is not within the delegating route's match (Istio drops it)`);
      return;
    }
    const route: Raw = { ...raw };
    if (match.length > 0) route.match = match;
    const name = [str(root, 'name'), str(raw, 'name')].filter((n) => n !== '').join('-');
    if (name !== '') route.name = name;
    for (const k of INHERITED) if (route[k] === undefined && root[k] !== undefined) route[k] = root[k];
    routes.push({ route, from });
  });
  return { routes, dropped };
}
