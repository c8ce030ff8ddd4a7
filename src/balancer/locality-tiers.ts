/**
 * Istio's localityLbSetting beyond "own zone first": `distribute` (traffic shares per locality),
 * `failover` (which region takes over) and `failoverPriority` (tiers by labels). Localities are
 * Istio's `region/zone/subzone`: the mesh's `zone` and each endpoint's `zone` are read that way
 * (a value without "/" is a region alone).
 */
import { AvailabilityCount } from './availability.ts';
import type { Endpoint } from './endpoint.ts';
import { hash32 } from './hash.ts';
import type { Balancer, PickContext } from './types.ts';

/** Envoy's overprovisioning factor: a tier at 1/1.4 of its endpoints still takes all its load. */
const OVERPROVISIONING = 1.4;

export interface Locality {
  region: string;
  zone: string;
  subzone: string;
}

export function parseLocality(s: string | undefined): Locality {
  const [region = '', zone = '', subzone = ''] = (s ?? '').split('/');
  return { region, zone, subzone };
}

/**
 * Whether a locality pattern (`us-west/zone1/*`, `us-west/*`, `us-west`, `*`) covers `locality`:
 * each level given must be equal; `*` (or a missing level) covers anything below.
 */
export function localityMatches(pattern: string, locality: Locality): boolean {
  const want = pattern.split('/');
  const have = [locality.region, locality.zone, locality.subzone];
  for (let i = 0; i < want.length && i < 3; i++) {
    if (want[i] === '*') return true;
    if (want[i] !== have[i]) return false;
  }
  return true;
}

export interface DistributeRule {
  from: string;
  to: Readonly<Record<string, number>>;
}

export interface FailoverRule {
  from: string;
  to: string;
}

/** Labels with a topology meaning, read from the locality rather than from the labels. */
const TOPOLOGY: Record<string, keyof Locality> = {
  'topology.kubernetes.io/region': 'region',
  'topology.kubernetes.io/zone': 'zone',
  'topology.istio.io/subzone': 'subzone',
};

/**
 * The priority tier of an endpoint, as Istio orders them: by `failoverPriority` labels first (all
 * N matching the client's: tier 0, the first N-1: tier 1, ... none: tier N), then by locality
 * (same subzone, same zone, same region, the region `failover` names, any other).
 */
export function tierOf(
  ep: { zone: string | undefined; labels: Readonly<Record<string, string>> },
  client: { locality: Locality; labels: Readonly<Record<string, string>> },
  failover: readonly FailoverRule[] | undefined,
  priority: readonly string[] | undefined,
): number {
  const loc = parseLocality(ep.zone);
  let labelTier = 0;
  if (priority !== undefined && priority.length > 0) {
    let matched = 0;
    for (const entry of priority) {
      const eq = entry.indexOf('=');
      const key = eq < 0 ? entry : entry.slice(0, eq);
      const topo = TOPOLOGY[key];
      const have =
        topo !== undefined ? loc[topo] : Object.hasOwn(ep.labels, key) ? ep.labels[key] : undefined;
      const want =
        eq >= 0
          ? entry.slice(eq + 1)
          : topo !== undefined
            ? client.locality[topo]
            : Object.hasOwn(client.labels, key)
              ? client.labels[key]
              : undefined;
      if (have === undefined || want === undefined || have !== want) break;
      matched++;
    }
    labelTier = priority.length - matched;
  }
  const c = client.locality;
  let localityTier: number;
  if (loc.region === c.region && loc.zone === c.zone && loc.subzone === c.subzone) localityTier = 0;
  else if (loc.region === c.region && loc.zone === c.zone) localityTier = 1;
  else if (loc.region === c.region) localityTier = 2;
  else if (failover?.some((f) => f.from === c.region && f.to === loc.region)) localityTier = 3;
  else localityTier = 4;
  return labelTier * 5 + localityTier;
}

interface Group {
  endpoints: Endpoint[];
  inner: Balancer;
  count: AvailabilityCount;
  weight: number;
}

/**
 * Picks a group (a priority tier, or a `distribute` locality) by its load, then an endpoint in it
 * with the group's own balancer. Priority tiers share load as Envoy does: the first takes
 * min(100%, 1.4 × its available share), the next the rest up to its own health, and so on
 * (normalized when the total health is below 100%). Distributed localities take their weight
 * times their health.
 */
export class TieredBalancer implements Balancer {
  readonly name: string;
  readonly #groupOf: (ep: Endpoint) => number | undefined;
  readonly #weights: ((group: number) => number) | undefined;
  readonly #make: () => Balancer;
  readonly #random: () => number;
  readonly #all: Balancer;
  #list: readonly Endpoint[] | undefined;
  #groups: Group[] = [];

  /**
   * `groupOf`: an endpoint's group (a tier: lower goes first), or undefined for no traffic.
   * `weights`: distribute mode, each group's share; undefined: priority mode.
   */
  constructor(
    groupOf: (ep: Endpoint) => number | undefined,
    make: () => Balancer,
    weights?: (group: number) => number,
    random: () => number = Math.random,
  ) {
    this.#groupOf = groupOf;
    this.#weights = weights;
    this.#make = make;
    this.#random = random;
    this.#all = make();
    this.name = this.#all.name;
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#list = endpoints;
    const byKey = new Map<number, Endpoint[]>();
    for (const ep of endpoints) {
      const g = this.#groupOf(ep);
      if (g === undefined) continue;
      let list = byKey.get(g);
      if (list === undefined) {
        list = [];
        byKey.set(g, list);
      }
      list.push(ep);
    }
    const keys = [...byKey.keys()].sort((a, b) => a - b);
    const previous = this.#groups;
    this.#groups = keys.map((k, i) => {
      const group: Group = {
        endpoints: byKey.get(k) as Endpoint[],
        inner: previous[i]?.inner ?? this.#make(),
        count: new AvailabilityCount(),
        weight: this.#weights ? this.#weights(k) : 0,
      };
      group.inner.update?.(group.endpoints);
      return group;
    });
    this.#all.update?.(endpoints);
  }

  /** Each group's share of the traffic now (for tests and the snapshot). */
  loads(endpoints: readonly Endpoint[], now: number): number[] {
    if (endpoints !== this.#list) this.update(endpoints);
    const health = this.#groups.map((g) =>
      Math.min(1, OVERPROVISIONING * g.count.refresh(g.endpoints, now).share),
    );
    if (this.#weights) {
      const w = this.#groups.map((g, i) => g.weight * (health[i] as number));
      const sum = w.reduce((a, b) => a + b, 0);
      return sum > 0 ? w.map((x) => x / sum) : w;
    }
    const total = health.reduce((a, b) => a + b, 0);
    const scale = total < 1 && total > 0 ? 1 / total : 1;
    let left = 1;
    return health.map((h) => {
      const take = Math.min(left, h * scale);
      left -= take;
      return take;
    });
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    if (endpoints !== this.#list) this.update(endpoints);
    if (ctx.panic) return this.#all.pick(endpoints, ctx);
    const loads = this.loads(endpoints, ctx.now);
    let u = ctx.hashKey === undefined ? this.#random() : hash32(ctx.hashKey, 0x85ebca6b) / 4294967296;
    for (let i = 0; i < this.#groups.length; i++) {
      u -= loads[i] as number;
      if (u < 0 || i === this.#groups.length - 1) {
        const g = this.#groups[i] as Group;
        const ep = (loads[i] as number) > 0 ? g.inner.pick(g.endpoints, ctx) : undefined;
        if (ep) return ep;
      }
    }
    // The chosen group had nothing usable: the first group that has.
    for (const g of this.#groups) {
      const ep = g.inner.pick(g.endpoints, ctx);
      if (ep) return ep;
    }
    return undefined;
  }
}

/** The first `distribute` rule whose `from` covers the client's locality. */
export function distributeFor(
  rules: readonly DistributeRule[],
  client: Locality,
): DistributeRule | undefined {
  return rules.find((r) => localityMatches(r.from, client));
}
