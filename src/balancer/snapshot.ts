import type { Endpoint } from './endpoint.ts';
import type { Balancer } from './types.ts';

/** What `mesh.snapshot()` shows of one endpoint's load-balancing state. */
export interface EndpointSnapshot {
  address: string;
  zone?: string | undefined;
  /** Requests in flight. */
  inflight: number;
  /** Peak-EWMA RTT estimate at `now`, ms (decayed toward 0 while idle). */
  ewmaMs: number;
  /** Weight from config / discovery. */
  weight: number;
  /** Weight the balancer uses now (weightFactor and slow start included). */
  effectiveWeight: number;
  healthy: boolean;
  ejected: boolean;
  draining: boolean;
}

export function endpointSnapshot(ep: Endpoint, now: number, balancer?: Balancer): EndpointSnapshot {
  return {
    address: ep.address,
    ...(ep.zone === undefined ? {} : { zone: ep.zone }),
    inflight: ep.inflight,
    ewmaMs: Math.round(ep.ewma.estimate(now) * 1000) / 1000,
    weight: ep.weight,
    effectiveWeight: balancer?.weightOf ? balancer.weightOf(ep, now) : ep.effectiveWeight(now),
    healthy: ep.healthy,
    ejected: ep.isEjected(now),
    draining: ep.draining,
  };
}
