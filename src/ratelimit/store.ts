/**
 * Counters and where they are counted. A `Counter` is one thing counted (a policy's key, or an
 * application's metric) with its limits; a `CounterStore` takes tokens from it. The in-process
 * store (`MemoryStore`) runs the algorithm of src/ratelimit/limits.ts on local state; the Redis
 * store (src/ratelimit/redis-store.ts) takes leases or single tokens from Redis and falls back to
 * the same local algorithm, on a share of each limit, when Redis cannot be reached.
 */
import type { Clock } from '../clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import {
  available,
  type CompiledLimit,
  compileLimit,
  consume,
  type LimitState,
  newLimitState,
  refund,
  resetIn,
  waitFor,
} from './limits.ts';
import type { UsageRow } from './usage.ts';

/** What `take` says. */
export const ALLOWED = 0;
export const OVER_LIMIT = 1;
export const STORE_DOWN = 2;
export type TakeResult = typeof ALLOWED | typeof OVER_LIMIT | typeof STORE_DOWN;

/** How the last allowed take of a counter was decided (for a refund). */
export const VIA_LOCAL = 0;
export const VIA_LEASE = 1;
export const VIA_STORE = 2;

/** Slots of per-period state: one per period code (0 1s … 4 month). */
const SLOTS = 5;

export class Counter {
  /** The key in the store: scope, kind, name and the counted value. */
  readonly id: string;
  /** The limits as configured (the store may count a share of them). */
  limits: readonly CompiledLimit[];
  /** In-process state per period code (memory store, local mode, local fallback). */
  readonly local: (LimitState | undefined)[] = new Array(SLOTS).fill(undefined);
  /** Sequence number of the last use, for eviction (least recently used first). */
  lastUsed = 0;
  /** The usage row this counter's admitted requests go to (set by the limiter). */
  usage: UsageRow | undefined;
  /** After a refusal: ms until a token is expected. */
  retryAfterMs = 0;
  /** VIA_LOCAL, VIA_LEASE or VIA_STORE: how the last allowed take was decided. */
  via = 0;

  // ---- lease state (Redis store, lease mode) ----
  /** Tokens taken from the store and not spent yet. */
  tokens = 0;
  /** Monotonic ms when the lease's shortest window ends (tokens are void after it). */
  leaseUntil = 0;
  /** Window starts (store time, ms) of the lease, per limit. */
  leaseWindows: number[] | undefined;
  /** Monotonic ms before which the store said there is nothing to take. */
  deniedUntil = 0;
  /** The lease being fetched, if any. */
  refill: Promise<void> | undefined;
  /** Tokens the requests waiting on `refill` need. */
  demand = 0;
  /** Tokens to take next time (starts at 4, adapts between 1 and the store's lease bound). */
  leaseSize = 4;
  /** Monotonic ms when the current lease arrived (to adapt its size). */
  leaseAt = 0;
  /**
   * Per limit, tokens to settle with the store at the next call (negative: unused lease tokens
   * given back; positive: requests admitted locally while the store was unreachable), and the
   * window each amount belongs to (the store ignores an amount for a window that has passed).
   */
  adjust: number[] | undefined;
  adjustWindows: number[] | undefined;
  /** What the store said at the last call, per limit: remaining, and monotonic ms of the reset. */
  storeRemaining: number[] | undefined;
  storeResetAt: number[] | undefined;
  /** Monotonic ms until which `storeRemaining` is the best view (after: the local state's). */
  storeFresh = 0;

  constructor(id: string, limits: readonly CompiledLimit[]) {
    this.id = id;
    this.limits = limits;
  }

  state(l: CompiledLimit): LimitState {
    let s = this.local[l.code];
    if (s === undefined) {
      s = newLimitState();
      this.local[l.code] = s;
    }
    return s;
  }

  /** True when the counter holds nothing that matters (it can be dropped without loss). */
  atRest(now: number, wall: number): boolean {
    if (this.tokens > 0 || this.refill !== undefined || this.adjust !== undefined || this.deniedUntil > now)
      return false;
    for (const l of this.limits) {
      const s = this.local[l.code];
      if (s === undefined) continue;
      if (s.count > 0 && wall < s.winEnd) return false;
      if (s.tat > wall) return false;
    }
    return true;
  }
}

/** The most counters one store keeps; beyond, idle ones are dropped (see `CounterTable`). */
export const MAX_COUNTERS = 100_000;

/**
 * The counters of one policy, or of one plan metric: keyed by the counted value alone, so the hot
 * path looks up the request's own string (no key built per request). `prefix` + value is the
 * counter's id in the store.
 */
export class Namespace {
  readonly prefix: string;
  readonly map = new Map<string, Counter>();
  constructor(prefix: string) {
    this.prefix = prefix;
  }
}

/**
 * Counters by namespace and value, bounded in total. When full, counters at rest are dropped
 * first; if none are, the least recently used tenth goes (they lose their counts: logged once).
 * Keys come from requests, so an unbounded table would let a caller who sends random keys fill
 * the memory.
 */
export class CounterTable {
  readonly #spaces: Namespace[] = [];
  readonly #max: number;
  #size = 0;
  #warned = false;
  #seq = 0;

  constructor(max = MAX_COUNTERS) {
    this.#max = max;
  }

  get size(): number {
    return this.#size;
  }

  namespace(prefix: string): Namespace {
    const ns = new Namespace(prefix);
    this.#spaces.push(ns);
    return ns;
  }

  get(
    ns: Namespace,
    key: string,
    limits: readonly CompiledLimit[],
    clock: () => number,
    wall: () => number,
    logger: Logger,
  ): Counter {
    let c = ns.map.get(key);
    if (c === undefined) {
      if (this.#size >= this.#max) this.#evict(clock(), wall(), logger);
      c = new Counter(ns.prefix + key, limits);
      ns.map.set(key, c);
      this.#size++;
    } else if (c.limits !== limits) c.limits = limits; // a plan changed: same counts, new limits
    c.lastUsed = ++this.#seq;
    return c;
  }

  *values(): IterableIterator<Counter> {
    for (const ns of this.#spaces) yield* ns.map.values();
  }

  #evict(now: number, wall: number, logger: Logger): void {
    for (const ns of this.#spaces)
      for (const [key, c] of ns.map)
        if (c.atRest(now, wall)) {
          ns.map.delete(key);
          this.#size--;
        }
    if (this.#size < this.#max * 0.9) return;
    const all: [Namespace, string, Counter][] = [];
    for (const ns of this.#spaces)
      for (const [key, c] of ns.map) if (c.refill === undefined) all.push([ns, key, c]);
    all.sort((a, b) => a[2].lastUsed - b[2].lastUsed);
    for (const [ns, key] of all.slice(0, Math.ceil(this.#max / 10))) {
      ns.map.delete(key);
      this.#size--;
    }
    if (!this.#warned) {
      this.#warned = true;
      logger.warn(
        { counters: this.#max },
        'rate limits: too many distinct keys; the least recently used counters were dropped (their counts are lost)',
      );
    }
  }
}

/** A share (limit / n) of each limit, compiled once per limit list and n. */
const shares = new WeakMap<readonly CompiledLimit[], Map<number, readonly CompiledLimit[]>>();

export function shareOf(limits: readonly CompiledLimit[], n: number): readonly CompiledLimit[] {
  if (n <= 1) return limits;
  let byN = shares.get(limits);
  if (byN === undefined) {
    byN = new Map();
    shares.set(limits, byN);
  }
  let s = byN.get(n);
  if (s === undefined) {
    s = limits.map((l) => compileLimit({ requests: l.requests, per: l.per, burst: l.burst }, n));
    byN.set(n, s);
  }
  return s;
}

/**
 * The in-process algorithm on a counter's local state, for `limits` (the counter's own, or a
 * share of them). All or nothing: `n` tokens from every limit, or none.
 */
export function takeLocal(c: Counter, limits: readonly CompiledLimit[], n: number, wall: number): TakeResult {
  for (let i = 0; i < limits.length; i++) {
    const l = limits[i] as CompiledLimit;
    if (available(l, c.state(l), wall) < n) {
      let wait = 0;
      for (const m of limits) wait = Math.max(wait, waitFor(m, c.state(m), n, wall));
      c.retryAfterMs = wait;
      return OVER_LIMIT;
    }
  }
  for (let i = 0; i < limits.length; i++) {
    const l = limits[i] as CompiledLimit;
    consume(l, c.state(l), n, wall);
  }
  return ALLOWED;
}

export function refundLocal(c: Counter, limits: readonly CompiledLimit[], n: number, wall: number): void {
  for (const l of limits) refund(l, c.state(l), n, wall);
}

/** What a store says about one limit of a counter, for the response headers. */
export interface LimitView {
  /** Requests left (this replica's view). */
  remaining: number;
  /** Ms until the window resets. */
  resetMs: number;
}

export interface StoreSnapshot {
  /** `memory` (in-process) or `redis`. */
  kind: 'memory' | 'redis';
  mode: 'memory' | 'lease' | 'exact' | 'local';
  /** memory; connecting, connected, fallback (Redis unreachable, onFailure applies). */
  state: 'memory' | 'connecting' | 'connected' | 'fallback';
  onFailure?: 'local' | 'open' | 'closed' | undefined;
  /** The Redis URL, credentials redacted. */
  url?: string | undefined;
  timeoutMs?: number | undefined;
  /** Processes sharing the limits: as configured, discovered, or learned from the store. */
  replicas: number;
  counters: number;
  /** Store calls made, failed (error or timeout), and timed out. */
  calls?: number | undefined;
  errors?: number | undefined;
  timeouts?: number | undefined;
  /** Decisions taken without the store because it could not be reached. */
  fallbackDecisions?: number | undefined;
  breaker?: 'closed' | 'open' | 'half_open' | undefined;
  lastError?: string | undefined;
  /** ISO time of the last successful usage report. */
  lastReportAt?: string | undefined;
}

export interface CounterStore {
  readonly clock: Clock;
  /** Wall clock, ms (calendar windows). */
  readonly wall: () => number;
  /** A namespace of counters (one per policy or plan metric); `prefix` + value is a counter's id. */
  namespace(prefix: string): Namespace;
  /** The counter of `key` in `ns`, created on first use. */
  counter(ns: Namespace, key: string, limits: readonly CompiledLimit[]): Counter;
  /** Takes `n` tokens from every limit of `c` (`wall`: now, read once per request). Synchronous when it can answer locally. */
  take(c: Counter, n: number, wall: number): TakeResult | Promise<TakeResult>;
  /** Gives back `n` tokens taken by an allowed take (another policy refused the request). */
  refund(c: Counter, n: number): void;
  /** Remaining and reset of limit `i` of `c`, as this process sees them, written into `out`. */
  view(c: Counter, i: number, wall: number, out: LimitView): LimitView;
  /** Processes sharing the limits (1 for the in-process store). */
  replicas(): number;
  snapshot(): StoreSnapshot;
  close(): Promise<void>;
}

/** In-process counting: no store configured, or `mode: local` (each process takes limit / N). */
export class MemoryStore implements CounterStore {
  readonly clock: Clock;
  readonly wall: () => number;
  readonly #table: CounterTable;
  readonly #logger: Logger;
  readonly #share: () => number;
  readonly #mode: 'memory' | 'local';

  constructor(opts: {
    clock: Clock;
    wall: () => number;
    logger: Logger;
    /** N of limit / N (mode local); default 1. */
    share?: () => number;
    maxCounters?: number;
  }) {
    this.clock = opts.clock;
    this.wall = opts.wall;
    this.#logger = opts.logger;
    this.#share = opts.share ?? (() => 1);
    this.#mode = opts.share ? 'local' : 'memory';
    this.#table = new CounterTable(opts.maxCounters);
  }

  namespace(prefix: string): Namespace {
    return this.#table.namespace(prefix);
  }

  counter(ns: Namespace, key: string, limits: readonly CompiledLimit[]): Counter {
    return this.#table.get(ns, key, limits, this.clock, this.wall, this.#logger);
  }

  take(c: Counter, n: number, wall: number): TakeResult {
    return takeLocal(c, this.#mode === 'memory' ? c.limits : shareOf(c.limits, this.#share()), n, wall);
  }

  refund(c: Counter, n: number): void {
    refundLocal(c, shareOf(c.limits, this.#share()), n, this.wall());
  }

  view(c: Counter, i: number, wall: number, out: LimitView): LimitView {
    const l = (this.#mode === 'memory' ? c.limits : shareOf(c.limits, this.#share()))[i] as CompiledLimit;
    const s = c.state(l);
    out.remaining = available(l, s, wall);
    out.resetMs = resetIn(l, s, wall);
    return out;
  }

  replicas(): number {
    return this.#share();
  }

  snapshot(): StoreSnapshot {
    return {
      kind: 'memory',
      mode: this.#mode,
      state: 'memory',
      replicas: this.#share(),
      counters: this.#table.size,
    };
  }

  async close(): Promise<void> {}
}
