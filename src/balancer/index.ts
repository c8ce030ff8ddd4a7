import type { Endpoint } from './endpoint.ts';
import { DEFAULT_FAILOVER_THRESHOLD, LocalityBalancer, meshZone } from './locality.ts';
import { distributeFor, localityMatches, parseLocality, TieredBalancer, tierOf } from './locality-tiers.ts';
import { MAGLEV_DEFAULTS, MaglevBalancer } from './maglev.ts';
import { leastRequestCost, P2CBalancer, peakEwmaCost } from './p2c.ts';
import { DEFAULT_PANIC_THRESHOLD, PanicGuard } from './panic.ts';
import { RandomBalancer } from './random.ts';
import { RING_HASH_DEFAULTS, RingHashBalancer } from './ring-hash.ts';
import { RoundRobinBalancer } from './round-robin.ts';
import type { LoadBalancerConfig } from './schema.ts';
import { SLOW_START_DEFAULTS, type SlowStartConfig, SlowStartWeight } from './slow-start.ts';
import type { Balancer, PickContext } from './types.ts';
import { defaultWeight, type WeightFn } from './usable.ts';

export { type HashKeyResult, type HashRequest, hashKeyFor } from './hash-key.ts';
export { meshZone } from './locality.ts';
export { type EndpointSnapshot, endpointSnapshot } from './snapshot.ts';
export type { Balancer, PickContext } from './types.ts';

export interface CreateBalancerOptions {
  /** The mesh's own zone. Default: MESHWORK_ZONE. */
  zone?: string | undefined;
  /** This workload's own labels (the mesh's `labels`), for localityLbSetting.failoverPriority. */
  labels?: Readonly<Record<string, string>> | undefined;
  /** Seeded random for tests. */
  random?: (() => number) | undefined;
}

/** Slow-start settings from `warmupDurationSecs` or `warmup`, or undefined. */
export function slowStartConfig(config: LoadBalancerConfig | undefined): SlowStartConfig | undefined {
  if (config?.warmup) {
    return {
      windowMs: config.warmup.duration,
      minFraction: (config.warmup.minimumPercent ?? SLOW_START_DEFAULTS.minimumPercent) / 100,
      aggression: config.warmup.aggression ?? SLOW_START_DEFAULTS.aggression,
    };
  }
  if (config?.warmupDurationSecs) {
    return {
      windowMs: config.warmupDurationSecs,
      minFraction: SLOW_START_DEFAULTS.minimumPercent / 100,
      aggression: SLOW_START_DEFAULTS.aggression,
    };
  }
  return undefined;
}

/**
 * Builds the balancer of one service from `trafficPolicy.loadBalancer`:
 * PanicGuard( LocalityBalancer( algorithm ) ), with slow start feeding the algorithm's weights.
 * Call `update(endpoints)` after the endpoint list changes and after health/ejection changes.
 */
export function createBalancer(
  config: LoadBalancerConfig | undefined,
  opts: CreateBalancerOptions = {},
): Balancer {
  const random = opts.random ?? Math.random;
  const ss = slowStartConfig(config);
  const slowStart = ss ? new SlowStartWeight(ss, defaultWeight) : undefined;
  const weight: WeightFn = slowStart ? slowStart.weight : defaultWeight;
  const make = (): Balancer => algorithm(config, random, weight);
  const zone = opts.zone ?? meshZone(undefined);
  const ls = config?.localityLbSetting;
  const localityOn = zone !== undefined && (ls?.enabled ?? true);
  const client = { locality: parseLocality(zone), labels: opts.labels ?? {} };
  const distribute = localityOn && ls?.distribute ? distributeFor(ls.distribute, client.locality) : undefined;
  let core: Balancer;
  if (distribute !== undefined) {
    // localityLbSetting.distribute: each `to` locality takes its weight (times its health).
    const keys = Object.keys(distribute.to);
    core = new TieredBalancer(
      (ep) => {
        const i = keys.findIndex((k) => localityMatches(k, parseLocality(ep.zone)));
        return i < 0 ? undefined : i;
      },
      make,
      (i) => distribute.to[keys[i] as string] ?? 0,
      random,
    );
  } else if ((ls?.enabled ?? true) && (ls?.failover?.length || ls?.failoverPriority?.length)) {
    // failover / failoverPriority: priority tiers, spilling over by health as Envoy does.
    core = new TieredBalancer(
      (ep) => tierOf(ep, client, ls?.failover, ls?.failoverPriority),
      make,
      undefined,
      random,
    );
  } else if (localityOn && zone !== undefined) {
    core = new LocalityBalancer(zone, ls?.failoverThreshold ?? DEFAULT_FAILOVER_THRESHOLD, make, random);
  } else core = make();
  const guard = new PanicGuard(core, config?.panicThreshold ?? DEFAULT_PANIC_THRESHOLD);
  return slowStart ? new SlowStartTracker(guard, slowStart) : guard;
}

/** Lets slow start see the initial endpoint list (they are exempt, as in Envoy). */
class SlowStartTracker implements Balancer {
  readonly name: string;
  readonly #inner: Balancer;
  readonly #slowStart: SlowStartWeight;

  constructor(inner: Balancer, slowStart: SlowStartWeight) {
    this.#inner = inner;
    this.#slowStart = slowStart;
    this.name = inner.name;
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#slowStart.seen(endpoints);
    this.#inner.update?.(endpoints);
  }

  weightOf(ep: Endpoint, now: number): number {
    return this.#slowStart.weight(ep, now);
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    this.#slowStart.seen(endpoints);
    return this.#inner.pick(endpoints, ctx);
  }
}

/** The algorithm alone (no locality, panic or slow-start tracking). */
export function algorithm(
  config: LoadBalancerConfig | undefined,
  random: () => number = Math.random,
  weight: WeightFn = defaultWeight,
): Balancer {
  const ch = config?.consistentHash;
  if (ch) {
    if (ch.maglev) return new MaglevBalancer(ch.maglev.tableSize ?? MAGLEV_DEFAULTS.tableSize, random);
    return new RingHashBalancer(
      ch.ringHash?.minimumRingSize ?? ch.minimumRingSize ?? RING_HASH_DEFAULTS.minimumRingSize,
      random,
    );
  }
  switch (config?.simple ?? 'PEAK_EWMA') {
    case 'LEAST_REQUEST':
    case 'LEAST_CONN':
      return new P2CBalancer('LEAST_REQUEST', leastRequestCost, random, weight);
    case 'ROUND_ROBIN':
      return new RoundRobinBalancer(weight);
    case 'RANDOM':
      return new RandomBalancer(random, weight);
    default:
      return new P2CBalancer('PEAK_EWMA', peakEwmaCost, random, weight);
  }
}
