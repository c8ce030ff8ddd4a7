/**
 * Which documents apply to this workload's in-mesh calls, as Istio scopes them: `exportTo`
 * (namespaces that see a VirtualService or DestinationRule), a VirtualService's `gateways`
 * (`mesh` means the sidecars, so in-process calls), and a DestinationRule's `workloadSelector`.
 * A document that does not apply is left out with a note: never applied more widely than Istio
 * would, in either mode.
 */
import { type Cx, custom, type Handler, isObject, note, problem, SKIP, show } from './walk.ts';

/**
 * A scoping field in a table: read (and checked) by the driver through the functions below,
 * before the document is converted; nothing is copied.
 */
export const scopeField = (what: string): Handler => custom(what, () => SKIP);

/** Istio's reserved gateway name for the sidecars of the mesh (in-mesh traffic). */
export const MESH_GATEWAY = 'mesh';

function strings(v: unknown, path: string, cx: Cx): string[] | undefined {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  problem(cx, path, `expected a list of strings, got ${show(v)}`);
  return undefined;
}

/**
 * Whether `exportTo` makes the document visible in `here` (this workload's namespace): none or
 * `*` is everywhere, `.` the document's own namespace, `~` nowhere, other entries are namespace
 * names. A malformed value is reported and the document is left out (fail closed).
 */
export function exportedTo(exportTo: unknown, docNamespace: string, here: string, cx: Cx): boolean {
  const list = strings(exportTo, 'spec.exportTo', cx);
  if (list === undefined) return false;
  if (list.length === 0) return true;
  const seen = list.some((ns) => ns === '*' || (ns === '.' ? docNamespace === here : ns === here));
  if (!seen) {
    note(
      cx,
      'spec.exportTo',
      `exports to ${show(list)}, which leaves out namespace "${here}" (this workload's: the namespace option, default "default"); the document is left out, as Istio does not apply it there`,
    );
  }
  return seen;
}

/**
 * A VirtualService's gateways. `meshDefault`: routes without their own `match[].gateways` apply to
 * in-mesh calls (no `gateways`, or a list with `mesh`). `any`: some route applies to in-mesh calls.
 */
export function meshScope(spec: Record<string, unknown>, cx: Cx): { meshDefault: boolean; any: boolean } {
  const gateways = strings(spec.gateways, 'spec.gateways', cx);
  if (gateways === undefined) return { meshDefault: false, any: false };
  const meshDefault = gateways.length === 0 || gateways.includes(MESH_GATEWAY);
  let any = meshDefault;
  if (!any && Array.isArray(spec.http)) {
    any = spec.http.some(
      (r) =>
        isObject(r) &&
        Array.isArray(r.match) &&
        r.match.some((m) => isObject(m) && Array.isArray(m.gateways) && m.gateways.includes(MESH_GATEWAY)),
    );
  }
  if (!any) {
    note(
      cx,
      'spec.gateways',
      `binds the routes to ${show(gateways)} only (no "mesh"): they apply to gateway traffic, not to in-mesh calls, so the VirtualService is left out`,
    );
  }
  return { meshDefault, any };
}

/**
 * Whether a DestinationRule's `workloadSelector` selects this workload: `yes` with none, `no` when
 * its matchLabels do not all match `labels` or it is in another namespace (Istio: selectors do not
 * cross namespaces), `unknown` (reported) without `labels` or with a selector other than matchLabels.
 */
export function selectsWorkload(
  selector: unknown,
  labels: Readonly<Record<string, string>> | undefined,
  docNamespace: string,
  here: string,
  cx: Cx,
): 'yes' | 'no' | 'unknown' {
  if (selector === undefined || selector === null) return 'yes';
  const match = isObject(selector) ? selector.matchLabels : undefined;
  const closed = '; non-strict: the DestinationRule is left out (it may not apply to this workload)';
  if (!isObject(selector) || Object.keys(selector).some((k) => k !== 'matchLabels') || !isObject(match)) {
    problem(cx, 'spec.workloadSelector', `only matchLabels is supported (value ${show(selector)})${closed}`);
    return 'unknown';
  }
  if (docNamespace !== here) {
    note(
      cx,
      'spec.workloadSelector',
      `selects workloads of namespace "${docNamespace}", not of "${here}" (this workload's): left out`,
    );
    return 'no';
  }
  if (labels === undefined) {
    problem(
      cx,
      'spec.workloadSelector',
      `selects workloads ${show(match)}: pass fromIstio(yaml, { workloadLabels }) with this workload's labels${closed}`,
    );
    return 'unknown';
  }
  const yes = Object.entries(match).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === String(v));
  if (!yes) {
    note(
      cx,
      'spec.workloadSelector',
      `selects workloads ${show(match)}, not this one (${show(labels)}): the DestinationRule is left out`,
    );
  }
  return yes ? 'yes' : 'no';
}
