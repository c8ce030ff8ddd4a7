/**
 * THE one place where configuration built from xDS enters the running mesh: `apply(config)`, with
 * config in createMesh's `services` shape (the services the control plane makes). It goes through
 * the same machinery as mesh.update (src/live/controller.ts), as a layer of its own, `xds`, merged
 * over the others: the whole config is validated first (a refusal changes nothing and is logged,
 * published on `meshwork:config:update` and shown in the snapshot), then swapped in at once; a
 * service whose config did not change keeps running untouched, one whose discovery, TLS and pools
 * did not change keeps its endpoints, pools and load history; removed services drain.
 */
import type { ConfigController } from '../live/controller.ts';
import type { XdsServices } from './client.ts';

/** `apply` for the xDS client: the `xds` layer of the live config. Throws when refused. */
export function xdsLayer(live: () => ConfigController, source: string): (config: XdsServices) => void {
  return (config) => live().apply('xds', config, source);
}
