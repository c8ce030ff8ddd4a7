/**
 * THE one place where configuration built from xDS enters the running mesh: `apply(config)`,
 * with config in createMesh's `services` shape (only the services xDS makes).
 *
 * Until live configuration (`mesh.update`) is on this branch, apply swaps services in the mesh's
 * service table itself: the whole config is validated first (a refusal changes nothing), new and
 * changed services are built beside the running ones, then swapped in at once; a service whose
 * config did not change keeps running untouched; replaced and removed ones drain (close with the
 * mesh's closeTimeout). When mesh.update lands, this becomes a call to it (an `xds` layer).
 */
import { formatIssues, formatPath } from '../config/load.ts';
import { PROTO_KEY_MESSAGE, protoKeyPaths } from '../config/reserved.ts';
import { type ServiceConfig, serviceSchema } from '../config/schema.ts';
import { type ConfigIssue, MeshworkConfigError } from '../errors.ts';
import { routeReferenceIssues } from '../routing/schema.ts';
import type { ServiceRuntime } from '../service.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { XdsServices } from './client.ts';

export interface ApplyHost {
  /** The mesh's service table, read by the dispatcher and the layers per request. */
  services: Map<string, ServiceRuntime>;
  /** Builds (does not start) a service runtime. */
  build(name: string, config: ServiceConfig): ServiceRuntime;
  /** How long a replaced service may finish its requests. */
  drainMs(): number;
  logger: Logger;
}

export function createApply(host: ApplyHost): (config: XdsServices) => void {
  /** xDS service name → its config as applied (JSON) and validated. */
  const applied = new Map<string, { key: string; config: ServiceConfig }>();
  return (config) => {
    const valid = validate(config, applied);
    const built = new Map<string, { svc: ServiceRuntime; key: string; config: ServiceConfig }>();
    try {
      for (const [name, v] of valid) {
        if (applied.get(name)?.key === v.key && host.services.has(name)) continue;
        built.set(name, { svc: host.build(name, v.config), ...v });
      }
    } catch (err) {
      for (const { svc } of built.values()) void svc.close(0);
      throw err;
    }
    const retired: ServiceRuntime[] = [];
    for (const [name, { svc, key, config: c }] of built) {
      const old = host.services.get(name);
      host.services.set(name, svc);
      applied.set(name, { key, config: c });
      if (old) retired.push(old);
    }
    for (const { svc } of built.values()) svc.start();
    for (const name of [...applied.keys()])
      if (!valid.has(name)) {
        const old = host.services.get(name);
        host.services.delete(name);
        applied.delete(name);
        if (old) retired.push(old);
      }
    const drain = host.drainMs();
    for (const s of retired)
      s.close(drain).catch((err: unknown) =>
        host.logger.warn(
          { service: s.name, err: String(err) },
          'xds: a replaced service did not close cleanly',
        ),
      );
  };
}

/**
 * createMesh's validation of `services`, service by service: one whose config did not change is
 * not parsed again (a push to one of 1,000 clusters re-checks one), and references across
 * services (route and mirror hosts, subsets) are checked on the whole. Throws MeshworkConfigError.
 */
function validate(
  config: XdsServices,
  applied: ReadonlyMap<string, { key: string; config: ServiceConfig }>,
): Map<string, { key: string; config: ServiceConfig }> {
  const out = new Map<string, { key: string; config: ServiceConfig }>();
  const issues: ConfigIssue[] = [];
  for (const [name, fragment] of Object.entries(config.services)) {
    const key = JSON.stringify(fragment);
    const before = applied.get(name);
    if (before?.key === key) {
      out.set(name, before);
      continue;
    }
    const reserved = protoKeyPaths(fragment);
    if (reserved.length > 0) {
      for (const p of reserved)
        issues.push({ path: formatPath(['services', name, ...p]), message: PROTO_KEY_MESSAGE });
      continue;
    }
    const r = serviceSchema.safeParse(fragment, { reportInput: true });
    if (!r.success) issues.push(...formatIssues(r.error.issues, ['services', name]));
    else out.set(name, { key, config: r.data });
  }
  for (const i of routeReferenceIssues(config.services as Parameters<typeof routeReferenceIssues>[0]))
    issues.push({ path: formatPath(i.path), message: `${JSON.stringify(i.input)} ${i.message}` });
  if (issues.length > 0) throw new MeshworkConfigError(issues);
  return out;
}
