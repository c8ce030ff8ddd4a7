/**
 * `fromIstio(yaml)`: turns Istio VirtualService and DestinationRule documents
 * (networking.istio.io v1, v1beta1, v1alpha3; multi-document YAML, or `kind: List`) into the
 * `services` part of a meshwork config: `{ services: { reviews: { http, subsets, trafficPolicy } } }`,
 * and AuthorizationPolicy documents (security.istio.io v1, v1beta1) into its `authorization`
 * part, enforced by `mesh.inbound()`. It does no discovery: merge the result with each
 * service's `discovery` yourself.
 *
 * Every field it cannot carry over is collected with its full path; they are all thrown at once
 * in one MESHWORK_ERR_ISTIO_UNSUPPORTED error, or, with `{ strict: false }`, passed to
 * `options.warn` and returned in `result.warnings`. No field is ever dropped silently
 * (metadata other than name and namespace, and `status`, carry no routing behavior and are skipped).
 * Input that is not valid Istio at all (a host that is not a DNS name, a `__proto__` key, a field
 * named like a JavaScript built-in such as `constructor`) is a MeshworkConfigError in both modes.
 * Every field of VirtualService and DestinationRule, honoured or refused, is listed in
 * docs/istio-conformance.md (generated from the tables of this folder).
 */

import { OBJECT_MEMBERS } from '../config/reserved.ts';
import type { ServiceConfigInput } from '../config/schema.ts';
import { type ConfigIssue, ErrorCodes, MeshworkConfigError, MeshworkError } from '../errors.ts';
import { authorizationPolicy, selects } from './authorization-policy.ts';
import { destinationRuleSpec } from './destination-rule.ts';
import { matchableName, wildcardMatches } from './hosts.ts';
import { parseDocs } from './input.ts';
import { exportedTo, meshScope, selectsWorkload } from './scope.ts';
import { virtualServiceSpec } from './virtual-service.ts';
import { builtinKey, type Cx, type IstioProblem, isObject, problem, show } from './walk.ts';

export type { IstioProblem } from './walk.ts';

export interface FromIstioOptions {
  /** true (default): throw on any unsupported field; false: warn and go on without it. */
  strict?: boolean;
  /** Keep hosts as FQDNs (`reviews.default.svc.cluster.local`) instead of short names. */
  fqdn?: boolean;
  /**
   * This workload's namespace, and the namespace of documents without metadata.namespace
   * (default "default"). A VirtualService or DestinationRule whose `exportTo` leaves it out, or a
   * DestinationRule whose `workloadSelector` is in another namespace, is left out. When given, an
   * FQDN host in another namespace is reported instead of being shortened.
   */
  namespace?: string;
  /**
   * Receives each warning (default: none; read result.warnings): in both modes, what was accepted
   * with a caveat (a document that does not apply here, a deprecated field, an unreachable route);
   * in non-strict mode also what was left out.
   */
  warn?: (message: string) => void;
  /**
   * The labels of the workload this process is (`{ app: 'travels', version: 'v1' }`): an
   * AuthorizationPolicy with a `selector`, or a DestinationRule with a `workloadSelector`, is
   * kept when its matchLabels all match them, and left out when they do not. Without this option
   * such a document is reported, since which workloads it covers cannot be known (non-strict: a
   * DestinationRule is left out, an AuthorizationPolicy fails closed).
   */
  workloadLabels?: Record<string, string>;
  /**
   * The names of the services this mesh has (as in its config), besides those the YAML names.
   * A VirtualService or DestinationRule with a wildcard host (`*.local`, `*.example.com`, `*`)
   * applies to each of them that its host covers and that has no VirtualService (or
   * DestinationRule) of its own, as Istio picks the most specific host.
   */
  services?: readonly string[];
  /**
   * Where the Kubernetes secrets named by `tls.credentialName` are mounted, one directory per
   * secret (a secret volume: `tls.crt`, `tls.key`, `ca.crt`). Default
   * `/etc/istio/credentials`, so `credentialName: payments` reads `/etc/istio/credentials/payments/`.
   */
  credentialsDir?: string;
  /**
   * true: POST, PATCH and other non-idempotent requests are retried on the routes' retryOn
   * conditions, as Istio (Envoy) does. Default false: meshwork retries them only when they provably
   * never left (a refused connection), since a retried POST may run twice on the server. Every
   * converted route then carries `retries.retryNonIdempotent: true`.
   */
  retryNonIdempotent?: boolean;
}

/** The default FromIstioOptions.credentialsDir. */
export const DEFAULT_CREDENTIALS_DIR = '/etc/istio/credentials';

/**
 * What fromIstio produces for one service, typed as the service config it goes into (add its
 * `discovery`); createMesh validates it.
 */
export type IstioService = Pick<ServiceConfigInput, 'http' | 'subsets' | 'trafficPolicy'>;

/** The same while it is being built from untyped YAML. */
interface ConvertedService {
  http?: Record<string, unknown>[];
  subsets?: Record<string, unknown>[];
  trafficPolicy?: Record<string, unknown>;
}

export interface FromIstioResult {
  services: Record<string, IstioService>;
  /** From AuthorizationPolicy documents, when there are any: `{ policies: [...] }`. */
  authorization?: { policies: Record<string, unknown>[] };
  /**
   * What was accepted with a caveat, and (non-strict mode) what was left out, one line each. Not
   * enumerable, so merging skips it.
   */
  readonly warnings: readonly string[];
}

export class IstioUnsupportedError extends MeshworkError {
  readonly problems: readonly IstioProblem[];
  constructor(problems: readonly IstioProblem[]) {
    super(
      ErrorCodes.ISTIO_UNSUPPORTED,
      `fromIstio: ${problems.length} unsupported field(s) (pass { strict: false } to skip them with a warning):\n  ` +
        problems.map(formatProblem).join('\n  '),
    );
    this.name = 'IstioUnsupportedError';
    this.problems = problems;
  }
}

const API_VERSIONS = new Set([
  'networking.istio.io/v1',
  'networking.istio.io/v1beta1',
  'networking.istio.io/v1alpha3',
]);
const SECURITY_API_VERSIONS = new Set(['security.istio.io/v1', 'security.istio.io/v1beta1']);
const TOP_LEVEL = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

function formatProblem(p: IstioProblem): string {
  return `${p.path}: ${p.message}`;
}

/** Converts Istio YAML (one string with `---` separators, or several) into meshwork services. */
export function fromIstio(yaml: string | readonly string[], options: FromIstioOptions = {}): FromIstioResult {
  const strict = options.strict !== false;
  const problems: IstioProblem[] = [];
  const notes: IstioProblem[] = [];
  const invalidInput: ConfigIssue[] = [];
  // A Map: hosts are user-given names (`constructor` is a valid one), never looked up on an object.
  const services = new Map<string, ConvertedService>();
  const owners = new Map<string, string>();
  const policies: Record<string, unknown>[] = [];
  const here = options.namespace ?? 'default';
  const wildVs: WildVirtualService[] = [];
  const wildDr: WildDestinationRule[] = [];

  const docs = parseDocs(yaml);
  // Delegate VirtualServices (no hosts), by namespace/name, for the routes that delegate to them.
  const delegates = new Map<string, Record<string, unknown>>();
  for (const { value } of docs) {
    if (value.kind !== 'VirtualService' || !isObject(value.spec) || !isObject(value.metadata)) continue;
    const hosts = value.spec.hosts;
    if (Array.isArray(hosts) && hosts.length > 0) continue;
    const ns =
      typeof value.metadata.namespace === 'string'
        ? value.metadata.namespace
        : (options.namespace ?? 'default');
    if (typeof value.metadata.name === 'string') delegates.set(`${ns}/${value.metadata.name}`, value.spec);
  }

  for (const { value, where } of docs) {
    const kind = value.kind;
    const metadata = isObject(value.metadata) ? value.metadata : {};
    const name = typeof metadata.name === 'string' ? metadata.name : undefined;
    const label = `${String(kind)}/${name ?? `(${where})`}`;
    const networking =
      API_VERSIONS.has(String(value.apiVersion)) && (kind === 'VirtualService' || kind === 'DestinationRule');
    const security = SECURITY_API_VERSIONS.has(String(value.apiVersion)) && kind === 'AuthorizationPolicy';
    if (!networking && !security) {
      problems.push({
        path: `${where}`,
        message: `${show(value.apiVersion)} ${show(kind)} is not supported (only networking.istio.io v1, v1beta1, v1alpha3 VirtualService and DestinationRule, and security.istio.io v1, v1beta1 AuthorizationPolicy)`,
      });
      continue;
    }
    const docNamespace = typeof metadata.namespace === 'string' ? metadata.namespace : undefined;
    const namespace = docNamespace ?? options.namespace ?? 'default';
    const cx: Cx = {
      label,
      namespace,
      fqdn: options.fqdn === true,
      pinnedNamespace: options.namespace,
      problems,
      invalid: invalidInput,
      notes,
      here,
      meshDefault: true,
      workloadLabels: options.workloadLabels,
      wildcards: [],
      delegates,
      credentialsDir: (options.credentialsDir ?? DEFAULT_CREDENTIALS_DIR).replace(/\/+$/, ''),
    };
    for (const key of Object.keys(value)) {
      if (OBJECT_MEMBERS.has(key)) builtinKey(cx, key);
      else if (!TOP_LEVEL.has(key)) problem(cx, key, `is not supported (value ${show(value[key])})`);
    }
    if (!isObject(value.spec)) {
      problem(cx, 'spec', 'is missing');
      continue;
    }
    if (kind === 'AuthorizationPolicy') {
      // Istio: an empty spec is an ALLOW policy that matches nothing (it denies everything).
      const applies = selects(value.spec.selector, options.workloadLabels, cx);
      if (applies === 'no') continue;
      const policy = authorizationPolicy(value.spec, name ?? label, cx);
      if (policy && applies === 'unknown' && policy.action === 'ALLOW') policy.rules = [];
      if (policy) policies.push(policy);
      continue;
    }
    // Scope first: a document that does not apply to this workload's in-mesh calls is left out
    // whole (with a note), never converted and never reported field by field.
    if (!exportedTo(value.spec.exportTo, namespace, here, cx)) continue;
    if (kind === 'VirtualService') {
      // A delegate (no hosts) applies only through the routes that delegate to it.
      if (!Array.isArray(value.spec.hosts) || value.spec.hosts.length === 0) {
        if (name !== undefined && delegates.has(`${namespace}/${name}`)) continue;
      }
      const scope = meshScope(value.spec, cx);
      if (!scope.any) continue;
      cx.meshDefault = scope.meshDefault;
      const spec = virtualServiceSpec(value.spec, 'spec', cx) as Record<string, unknown>;
      const hosts = (spec.hosts as string[] | undefined) ?? [];
      if (!Array.isArray(value.spec.hosts) || value.spec.hosts.length === 0) {
        problem(cx, 'spec.hosts', 'is missing or empty');
      }
      for (const pattern of cx.wildcards ?? []) {
        wildVs.push({ pattern, label, http: spec.http as Record<string, unknown>[] | undefined });
      }
      for (const host of hosts) {
        const key = `vs:${host}`;
        const first = owners.get(key);
        if (first !== undefined) {
          problem(
            cx,
            'spec.hosts',
            `host "${host}" already has ${first}; Istio would apply only one of them`,
          );
          continue;
        }
        owners.set(key, label);
        if (spec.http !== undefined) {
          services.set(host, {
            ...services.get(host),
            http: structuredClone(spec.http as Record<string, unknown>[]),
          });
        }
      }
    } else {
      const selected = selectsWorkload(
        value.spec.workloadSelector,
        options.workloadLabels,
        namespace,
        here,
        cx,
      );
      if (selected !== 'yes') continue;
      const spec = destinationRuleSpec(value.spec, 'spec', cx) as Record<string, unknown>;
      const host = spec.host as string | undefined;
      const pattern = cx.wildcards?.[0];
      if (pattern !== undefined) {
        wildDr.push({
          pattern,
          label,
          subsets: spec.subsets as Record<string, unknown>[] | undefined,
          trafficPolicy: spec.trafficPolicy as Record<string, unknown> | undefined,
        });
        continue;
      }
      if (host === undefined) {
        if (value.spec.host === undefined) problem(cx, 'spec.host', 'is missing');
        continue;
      }
      const key = `dr:${host}`;
      const first = owners.get(key);
      if (first !== undefined) {
        problem(cx, 'spec.host', `host "${host}" already has ${first}; Istio would apply only one of them`);
        continue;
      }
      owners.set(key, label);
      const svc: ConvertedService = services.get(host) ?? {};
      services.set(host, svc);
      if (spec.subsets !== undefined) svc.subsets = spec.subsets as Record<string, unknown>[];
      if (spec.trafficPolicy !== undefined && Object.keys(spec.trafficPolicy as object).length > 0) {
        svc.trafficPolicy = spec.trafficPolicy as Record<string, unknown>;
      }
    }
  }

  applyWildcards(services, owners, wildVs, wildDr, options, here, notes);
  if (options.retryNonIdempotent === true) {
    for (const svc of services.values())
      for (const route of svc.http ?? [])
        if (route.route !== undefined)
          route.retries = {
            ...(route.retries as Record<string, unknown> | undefined),
            retryNonIdempotent: true,
          };
  }

  if (invalidInput.length > 0) throw new MeshworkConfigError(invalidInput);
  if (problems.length > 0 && strict) throw new IstioUnsupportedError(problems);
  const warnings = [
    ...notes.map((p) => `fromIstio: ${formatProblem(p)}`),
    ...problems.map((p) => `fromIstio: skipped ${formatProblem(p)}`),
  ];
  if (options.warn) for (const w of warnings) options.warn(w);
  // Object.fromEntries defines each host as an own key (never through a setter).
  const result = { services: Object.fromEntries(services) } as FromIstioResult;
  if (policies.length > 0) result.authorization = { policies };
  Object.defineProperty(result, 'warnings', { value: Object.freeze(warnings), enumerable: false });
  return result;
}

interface WildVirtualService {
  pattern: string;
  label: string;
  http: Record<string, unknown>[] | undefined;
}

interface WildDestinationRule {
  pattern: string;
  label: string;
  subsets: Record<string, unknown>[] | undefined;
  trafficPolicy: Record<string, unknown> | undefined;
}

/** Every service the result names or routes to, and the ones options.services lists. */
function knownServices(services: ReadonlyMap<string, ConvertedService>, extra: readonly string[]): string[] {
  const known = new Set<string>([...services.keys(), ...extra]);
  for (const svc of services.values()) {
    for (const route of svc.http ?? []) {
      const dests = [
        ...((route.route as { destination?: { host?: unknown } }[] | undefined) ?? []).map(
          (d) => d.destination,
        ),
        route.mirror as { host?: unknown } | undefined,
        ...((route.mirrors as { destination?: { host?: unknown } }[] | undefined) ?? []).map(
          (m) => m.destination,
        ),
      ];
      for (const d of dests) if (typeof d?.host === 'string') known.add(d.host);
    }
  }
  return [...known];
}

/**
 * Wildcard hosts, as Istio applies them: a service with no VirtualService (DestinationRule) of its
 * own takes the one whose wildcard host covers it most specifically (the longest host). One that
 * covers no known service is noted, since it changes nothing here.
 */
function applyWildcards(
  services: Map<string, ConvertedService>,
  owners: Map<string, string>,
  wildVs: readonly WildVirtualService[],
  wildDr: readonly WildDestinationRule[],
  options: FromIstioOptions,
  here: string,
  notes: IstioProblem[],
): void {
  if (wildVs.length === 0 && wildDr.length === 0) return;
  const known = knownServices(services, options.services ?? []);
  const best = <W extends { pattern: string }>(list: readonly W[], name: string): W | undefined => {
    let found: W | undefined;
    for (const w of list)
      if (
        wildcardMatches(w.pattern, name) &&
        (found === undefined || w.pattern.length > found.pattern.length)
      )
        found = w;
    return found;
  };
  const used = new Set<object>();
  for (const service of known) {
    const name = matchableName(service, here);
    const vs = owners.has(`vs:${service}`) ? undefined : best(wildVs, name);
    if (vs !== undefined) {
      used.add(vs);
      owners.set(`vs:${service}`, vs.label);
      if (vs.http !== undefined)
        services.set(service, { ...services.get(service), http: structuredClone(vs.http) });
    }
    const dr = owners.has(`dr:${service}`) ? undefined : best(wildDr, name);
    if (dr !== undefined) {
      used.add(dr);
      owners.set(`dr:${service}`, dr.label);
      const svc: ConvertedService = services.get(service) ?? {};
      services.set(service, svc);
      if (dr.subsets !== undefined) svc.subsets = structuredClone(dr.subsets);
      if (dr.trafficPolicy !== undefined && Object.keys(dr.trafficPolicy).length > 0)
        svc.trafficPolicy = structuredClone(dr.trafficPolicy);
    }
  }
  for (const w of [...wildVs, ...wildDr]) {
    if (used.has(w)) continue;
    notes.push({
      path: `${w.label} ${'http' in w ? 'spec.hosts' : 'spec.host'}`,
      message: `"${w.pattern}" covers none of the services known here (${known.join(', ') || 'none'}); pass fromIstio(yaml, { services: [...] }) with the mesh's service names`,
    });
  }
}
