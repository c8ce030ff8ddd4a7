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
import { validateConfig } from '../config/load.ts';
import type { ServiceConfig } from '../config/schema.ts';
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
  /** xDS service name → its config, as applied. */
  const applied = new Map<string, string>();
  return (config) => {
    const valid = validateConfig({ services: config.services });
    const built = new Map<string, { svc: ServiceRuntime; key: string }>();
    try {
      for (const [name, svc] of Object.entries(valid.services)) {
        const key = JSON.stringify(config.services[name]);
        if (applied.get(name) === key && host.services.has(name)) continue;
        built.set(name, { svc: host.build(name, svc), key });
      }
    } catch (err) {
      for (const { svc } of built.values()) void svc.close(0);
      throw err;
    }
    const retired: ServiceRuntime[] = [];
    for (const [name, { svc, key }] of built) {
      const old = host.services.get(name);
      host.services.set(name, svc);
      applied.set(name, key);
      if (old) retired.push(old);
    }
    for (const { svc } of built.values()) svc.start();
    for (const name of [...applied.keys()])
      if (!Object.hasOwn(valid.services, name)) {
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
