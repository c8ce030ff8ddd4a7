/**
 * The running config is the merge of layers, lowest first: the config file (MESHWORK_CONFIG or
 * liveConfig.file), the config given in code (createMesh, then mesh.update), the Istio
 * directory, Consul, etcd, the xDS control plane. Objects merge key by key, arrays and scalars are replaced (as
 * MESHWORK_CONFIG and code always merged). Each layer keeps its last accepted document: a
 * refused one leaves the layer as it was.
 */
import { deepMerge } from '../config/load.ts';

export type LayerName = 'file' | 'code' | 'istio' | 'consul' | 'etcd' | 'xds';

/** `xds`: the services an xDS control plane makes (src/xds), whose names no other layer uses. */
export const LAYER_ORDER: readonly LayerName[] = ['file', 'code', 'istio', 'consul', 'etcd', 'xds'];

/** What fromIstio gives: routes, subsets and policies per service, and authorization. */
export interface IstioLayer {
  services?: Record<string, unknown>;
  authorization?: unknown;
}

export interface Merged {
  doc: Record<string, unknown>;
  /** Istio resources for hosts that no layer configures (no discovery): left out, named here. */
  warnings: string[];
}

export function mergeLayers(docs: ReadonlyMap<LayerName, unknown>): Merged {
  const warnings: string[] = [];
  const istio = docs.get('istio') as IstioLayer | undefined;
  let filtered: IstioLayer | undefined;
  if (istio) {
    // Istio resources carry no discovery: they apply to services the other layers configure.
    let others: unknown = {};
    for (const name of LAYER_ORDER)
      if (name !== 'istio' && docs.has(name)) others = deepMerge(others, docs.get(name));
    const known = (others as { services?: unknown }).services;
    const services: Record<string, unknown> = Object.create(null);
    for (const [host, svc] of Object.entries(istio.services ?? {})) {
      if (typeof known === 'object' && known !== null && Object.hasOwn(known, host))
        Object.defineProperty(services, host, {
          value: svc,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      else
        warnings.push(
          `istio: service "${host}" is not configured (no discovery for it): its resources are left out`,
        );
    }
    filtered = { services };
    if (istio.authorization !== undefined) filtered.authorization = istio.authorization;
  }
  let merged: unknown = {};
  for (const name of LAYER_ORDER) {
    const doc = name === 'istio' ? filtered : docs.get(name);
    if (doc !== undefined) merged = deepMerge(merged, doc);
  }
  return { doc: merged as Record<string, unknown>, warnings };
}
