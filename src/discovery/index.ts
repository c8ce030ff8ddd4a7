import type { DiscoveryConfig } from './schema.ts';
import { StaticDiscovery } from './static.ts';
import type { DiscoveryProvider } from './types.ts';

/** Everything a provider may need from the mesh besides its own config. */
export interface DiscoveryContext {
  service: string;
  env: NodeJS.ProcessEnv;
}

/** Builds the provider named by the (validated) `discovery` block of one service. */
export function createDiscovery(config: DiscoveryConfig, _ctx: DiscoveryContext): DiscoveryProvider {
  if (config.static) return new StaticDiscovery(config.static);
  throw new Error('unreachable: discovery schema guarantees one provider');
}
