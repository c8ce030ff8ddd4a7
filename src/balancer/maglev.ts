import type { Endpoint } from './endpoint.ts';
import { hash32 } from './hash.ts';
import { RandomBalancer } from './random.ts';
import type { Balancer, PickContext } from './types.ts';
import { usable } from './usable.ts';

export const MAGLEV_DEFAULTS = {
  /** Envoy's Maglev table_size default (a prime). */
  tableSize: 65537,
} as const;

/** How many salted re-hashes a key gets when its slot's endpoint is unusable, before a random pick. */
const MAX_REHASH = 8;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016; Envoy's MAGLEV). Each endpoint walks its
 * own permutation of a prime-sized table and claims free slots in turn; weights set how often an
 * endpoint gets a turn. A pick is one hash and one table read: O(1). An unusable endpoint's keys
 * are re-hashed with a salt, so the keys of the others do not move. Removing 1 of N endpoints
 * moves about 1/N of the keys (a little more than ring hash: Maglev trades some stability for
 * even spread). Memory: 4 bytes per table slot, whatever the number of endpoints.
 */
export class MaglevBalancer implements Balancer {
  readonly name = 'MAGLEV';
  readonly #tableSize: number;
  readonly #fallback: RandomBalancer;
  #list: readonly Endpoint[] | undefined;
  #table = new Uint32Array(0);

  constructor(tableSize: number = MAGLEV_DEFAULTS.tableSize, random: () => number = Math.random) {
    if (!isPrime(tableSize)) throw new RangeError(`Maglev tableSize must be prime, got ${tableSize}`);
    this.#tableSize = tableSize;
    this.#fallback = new RandomBalancer(random, (ep) => ep.weight);
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#list = endpoints;
    const n = endpoints.length;
    const m = this.#tableSize;
    if (n === 0) {
      this.#table = new Uint32Array(0);
      return;
    }
    let maxWeight = 0;
    for (const ep of endpoints) if (ep.weight > maxWeight) maxWeight = ep.weight;
    const position = new Float64Array(n);
    const skip = new Float64Array(n);
    const credit = new Float64Array(n);
    const share = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const ep = endpoints[i] as Endpoint;
      position[i] = hash32(ep.address, 0x5bd1e995) % m;
      skip[i] = (hash32(ep.address, 0x27d4eb2f) % (m - 1)) + 1;
      share[i] = maxWeight > 0 ? ep.weight / maxWeight : 1;
    }
    const table = new Uint32Array(m);
    const taken = new Uint8Array(m);
    let filled = 0;
    while (filled < m) {
      for (let i = 0; i < n && filled < m; i++) {
        credit[i] = (credit[i] as number) + (share[i] as number);
        if ((credit[i] as number) < 1) continue;
        credit[i] = (credit[i] as number) - 1;
        let p = position[i] as number;
        while (taken[p]) p = (p + (skip[i] as number)) % m;
        taken[p] = 1;
        table[p] = i;
        position[i] = (p + (skip[i] as number)) % m;
        filled++;
      }
    }
    this.#table = table;
  }

  pick(endpoints: readonly Endpoint[], ctx: PickContext): Endpoint | undefined {
    if (endpoints !== this.#list) this.update(endpoints);
    if (ctx.hashKey === undefined) return this.#fallback.pick(endpoints, ctx);
    const table = this.#table;
    if (table.length === 0) return undefined;
    let key = ctx.hashKey;
    for (let attempt = 0; attempt <= MAX_REHASH; attempt++) {
      const ep = endpoints[table[hash32(key) % table.length] as number] as Endpoint;
      if (usable(ep, ctx)) return ep;
      key = `${ctx.hashKey}#${attempt + 1}`;
    }
    return this.#fallback.pick(endpoints, ctx);
  }
}
