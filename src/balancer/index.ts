import type { Endpoint } from './endpoint.ts';
import { P2CBalancer } from './p2c.ts';
import type { LoadBalancerConfig } from './schema.ts';
import type { Balancer } from './types.ts';

export interface BalancerOptions {
  zone?: string | undefined;
  random?: () => number;
}

const peakEwmaCost = (ep: Endpoint, now: number) => ep.ewma.cost(ep.inflight, now);

/** Builds the balancer for a (validated) `trafficPolicy.loadBalancer`. PEAK_EWMA is the default. */
export function createBalancer(config: LoadBalancerConfig | undefined, opts: BalancerOptions = {}): Balancer {
  const simple = config?.simple ?? 'PEAK_EWMA';
  switch (simple) {
    case 'PEAK_EWMA':
      return new P2CBalancer('PEAK_EWMA', peakEwmaCost, opts.random);
  }
}
