/** Istio hosts as meshwork service names (see FromIstioOptions.fqdn and .namespace). */
import { isIP } from 'node:net';
import { type Cx, custom, type Handler, invalid, problem, SKIP, show } from './walk.ts';

const CLUSTER_FQDN =
  /^([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.svc\.cluster\.local\.?$/;
const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Istio allows a wildcard first label: `*`, `*foo`, `*-foo`. */
const WILDCARD_LABEL = /^\*([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Why `host` is not an Istio host meshwork can read (RFC 1123 labels, as Istio validates them,
 * lowercase as meshwork service names are), or undefined when it is one.
 */
function hostSyntaxProblem(host: string): string | undefined {
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  const why = 'is not a valid host name (lowercase DNS labels: a-z, 0-9 and "-"';
  if (name.length === 0 || name.length > 253) return `${why}, at most 253 characters)`;
  if (/[A-Z]/.test(name)) return `${why}; meshwork service names are lowercase)`;
  if (name.includes('_')) return `${why}, no underscores)`;
  const labels = name.split('.');
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i] as string;
    if (label.includes('*')) {
      if (i === 0 && WILDCARD_LABEL.test(label)) continue;
      return `${why}; a wildcard "*" may only start the first label)`;
    }
    if (!DNS_LABEL.test(label))
      return `${why}; each label has 1-63 characters, not starting or ending with "-")`;
  }
  return undefined;
}

/** Maps an Istio host to a meshwork service name (see FromIstioOptions.fqdn). */
export const mapHost: Handler = custom(
  'a short name stays, a cluster FQDN is shortened (or kept with `fqdn: true`)',
  (host: unknown, path: string, cx: Cx): unknown => {
    if (typeof host !== 'string' || host.length === 0) {
      invalid(cx, path, `expected a host name, got ${show(host)}`);
      return SKIP;
    }
    // An IP address is a valid Istio host (it is reported below: not a meshwork service name).
    const syntax = isIP(host) === 0 ? hostSyntaxProblem(host) : undefined;
    if (syntax !== undefined) {
      invalid(cx, path, `${show(host)} ${syntax}`);
      return SKIP;
    }
    if (host.includes('*')) {
      if (cx.wildcards !== undefined && /^spec\.hosts?(\[\d+\])?$/.test(path)) {
        cx.wildcards.push(host.replace(/\.$/, ''));
        return SKIP;
      }
      problem(cx, path, `wildcard host ${show(host)} is not allowed here (Istio refuses it too)`);
      return SKIP;
    }
    if (!host.includes('.')) {
      if (!SERVICE_NAME.test(host)) {
        problem(cx, path, `${show(host)} is not a valid meshwork service name`);
        return SKIP;
      }
      return cx.fqdn ? `${host}.${cx.namespace}.svc.cluster.local` : host;
    }
    const m = CLUSTER_FQDN.exec(host);
    if (m) {
      const name = m[1] as string;
      const ns = m[3] as string;
      if (cx.fqdn) return host.replace(/\.$/, '');
      if (cx.pinnedNamespace !== undefined && ns !== cx.pinnedNamespace) {
        problem(
          cx,
          path,
          `${show(host)} is in namespace "${ns}", not "${cx.pinnedNamespace}"; use { fqdn: true } to keep full names`,
        );
        return SKIP;
      }
      return name;
    }
    if (!SERVICE_NAME.test(host)) {
      problem(cx, path, `${show(host)} is not a valid meshwork service name`);
      return SKIP;
    }
    return host;
  },
);

/**
 * The name wildcard hosts are matched against: a short name in this workload's namespace is
 * `<name>.<namespace>.svc.cluster.local`, as Istio expands it; a dotted name is itself.
 */
export function matchableName(service: string, namespace: string): string {
  return service.includes('.') ? service : `${service}.${namespace}.svc.cluster.local`;
}

/**
 * Whether an Istio wildcard host (`*`, `*.local`, `*.example.com`, `*foo.com`) covers `name`: the
 * part after `*` is a suffix of a longer name.
 */
export function wildcardMatches(pattern: string, name: string): boolean {
  const suffix = pattern.slice(1);
  return name.length > suffix.length && name.endsWith(suffix);
}
