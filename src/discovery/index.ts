import { MeshworkConfigError } from '../errors.ts';
import { ConsulDiscovery } from './consul.ts';
import { DnsDiscovery } from './dns.ts';
import { EtcdDiscovery } from './etcd.ts';
import { FileDiscovery } from './file.ts';
import type { DiscoveryConfig } from './schema.ts';
import { StaticDiscovery } from './static.ts';
import type { DiscoveryProvider } from './types.ts';

/** Everything a provider may need from the mesh besides its own config. */
export interface DiscoveryContext {
  service: string;
  env: NodeJS.ProcessEnv;
  /** The mesh's xDS client, when `xds` is configured (for `discovery.xds`). */
  xds?: { endpoints(cluster: string): DiscoveryProvider } | undefined;
}

/** Builds the provider named by the (validated) `discovery` block of one service. */
export function createDiscovery(config: DiscoveryConfig, ctx: DiscoveryContext): DiscoveryProvider {
  if (config.static) return new StaticDiscovery(config.static);
  if (config.dns) return new DnsDiscovery(config.dns);
  if (config.consul) return new ConsulDiscovery(config.consul, ctx);
  if (config.etcd) return new EtcdDiscovery(config.etcd, ctx);
  if (config.file) return new FileDiscovery(config.file);
  if (config.xds) {
    if (ctx.xds) return ctx.xds.endpoints(config.xds.cluster);
    throw new MeshworkConfigError([
      {
        path: `services.${ctx.service}.discovery.xds`,
        message: 'needs the mesh-wide `xds` config (the control plane to follow)',
      },
    ]);
  }
  throw new Error('unreachable: discovery schema guarantees one provider');
}
