import { AvailabilityCount } from './availability.ts';
import type { Endpoint } from './endpoint.ts';
import { hash32 } from './hash.ts';
import type { Balancer, PickContext } from './types.ts';

/** 100 / Envoy's default overprovisioning factor (1.4): the local zone keeps all traffic above it. */
export const DEFAULT_FAILOVER_THRESHOLD = 100 / 1.4;

/** The mesh's own zone: config first, then MESHWORK_ZONE. */
export function meshZone(
  configZone: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return configZone ?? (env.MESHWORK_ZONE || undefined);
}

/**
 * Zone-aware balancing, with Envoy's priority-spillover arithmetic (what Istio's localityLbSetting
 * configures): endpoints in the mesh's zone get all the traffic while at least `thresholdPct` of
 * them are available; below that, the local zone keeps share / threshold of the traffic and the
 * rest spills to the other zones. With no local endpoint, everything goes to the other zones.
 * In panic mode (ctx.panic) locality is off, as in Envoy. Each zone group has its own inner
 * balancer (ring hash and round robin keep state per list). With a hash key, the local/remote
 * choice is derived from the key, so a session does not flip between zones.
 */
export class LocalityBalancer implements Balancer {
  readonly name: string;
  readonly #zone: string;
  readonly #threshold: number;
  readonly #random: () => number;
  readonly #localInner: Balancer;
  readonly #remoteInner: Balancer;
  readonly #allInner: Balancer;
  readonly #localCount = new AvailabilityCount();
  #list: readonly Endpoint[] | undefined;
  #local: Endpoint[] = [];
  #remote: Endpoint[] = [];

  constructor(zone: string, thresholdPct: number, make: () => Balancer, random: () => number = Math.random) {
    this.#zone = zone;
    this.#threshold = thresholdPct;
    this.#random = random;
    this.#localInner = make();
    this.#remoteInner = make();
    this.#allInner = make();
    this.name = this.#localInner.name;
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#list = endpoints;
    const local: Endpoint[] = [];
    const remote: Endpoint[] = [];
    for (const ep of endpoints) (ep.zone === this.#zone ? local : remote).push(ep);
    this.#local = local;
    this.#remote = remote;
    this.#localCount.invalidate();
    this.#localInner.update?.(local);
    this.#remoteInner.update?.(remote);
    this.#allInner.update?.(endpoints);
  }

  /** Share of traffic the local zone keeps at `now` (for tests and the snapshot). */
  localShare(endpoints: readonly Endpoint[], now: number): number {
    if (endpoints !== this.#list) this.update(endpoints);
    if (this.#local.length === 0) return 0;
    if (this.#threshold <= 0) return 1;
    const share = this.#localCount.refresh(this.#local, now).share * 100;
    return share >= this.#threshold ? 1 : share / this.#threshold;
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    if (endpoints !== this.#list) this.update(endpoints);
    if (ctx.panic) return this.#allInner.pick(endpoints, ctx);
    const keep = this.localShare(endpoints, ctx.now);
    if (keep > 0) {
      const u = ctx.hashKey === undefined ? this.#random() : hash32(ctx.hashKey, 0x9e3779b9) / 4294967296;
      if (u < keep) {
        const ep = this.#localInner.pick(this.#local, ctx);
        if (ep) return ep;
      }
    }
    return this.#remoteInner.pick(this.#remote, ctx) ?? this.#localInner.pick(this.#local, ctx);
  }
}
