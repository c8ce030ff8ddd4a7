/**
 * Limits shared through Redis.
 *
 *   lease (default)  each process takes a batch of tokens from Redis in one script call and spends
 *                    them locally; it fetches the next batch before the last one runs out, so a
 *                    request waits on Redis only when a batch ran dry. Unused tokens go back when
 *                    the batch's window ends. Batches grow (doubling) while they are spent fast,
 *                    up to `leaseMax` (default: the smallest limit / 20).
 *   exact            one script call per request.
 *
 * Redis that cannot be reached (disconnected, erroring, or slower than `timeout`) never makes a
 * request wait longer than `timeout`: the decision falls back to `onFailure` (local: this process
 * enforces limit / N on its own; open; closed), a breaker stops calling a Redis that keeps
 * failing, and one probe call at a time (500 ms, doubling to 5 s) finds out when it is back.
 * Requests admitted locally during an outage are charged to Redis when it returns, so the window
 * that spans the outage still holds.
 */
import type { Clock } from '../clock.ts';
import type { Logger } from '../telemetry/logger.ts';
import { redactUrl } from '../telemetry/url.ts';
import { available, type CompiledLimit, consume, resetIn } from './limits.ts';
import { REPORT, type Script, TAKE } from './lua.ts';
import type { RedisConnection } from './redis-client.ts';
import {
  ALLOWED,
  type Counter,
  type CounterStore,
  CounterTable,
  type LimitView,
  type Namespace,
  OVER_LIMIT,
  refundLocal,
  STORE_DOWN,
  type StoreSnapshot,
  shareOf,
  type TakeResult,
  takeLocal,
  VIA_LEASE,
  VIA_LOCAL,
  VIA_STORE,
} from './store.ts';

/** Consecutive failed calls that open the breaker. */
const BREAKER_FAILURES = 3;
const BREAKER_MIN_MS = 500;
const BREAKER_MAX_MS = 5_000;
/** A lease lasts at most this long (then its unused tokens go back). */
const LEASE_TTL_MS = 1_000;
/** A lease spent faster than this makes the next one twice as big. */
const LEASE_FAST_MS = 100;
/** How long the store's last answer is the view used for the response headers. */
const STORE_VIEW_MS = 1_000;

export interface RedisStoreOptions {
  connection: RedisConnection;
  url: string;
  domain: string;
  mode: 'lease' | 'exact';
  onFailure: 'local' | 'open' | 'closed';
  timeoutMs: number;
  /** Configured or discovered process count; undefined = learned from the store. */
  replicas: () => number | undefined;
  leaseMax: number | undefined;
  clock: Clock;
  wall: () => number;
  logger: Logger;
  /** Test hook: Redis time (µs) instead of TIME. */
  nowOverride?: () => string;
}

export interface UsageReply {
  replicas: number;
  /** Per row: totals for minute, hour, day, month. */
  totals: number[][];
  /** Window starts (store time, ms) for minute, hour, day, month. */
  windows: number[];
}

const noop = () => {};

export class RedisStore implements CounterStore {
  readonly clock: Clock;
  readonly wall: () => number;
  readonly #o: RedisStoreOptions;
  readonly #redis: RedisConnection;
  readonly #table: CounterTable;
  readonly #prefix: string;
  /** A random id for this process in the store's heartbeat set. */
  readonly id = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  #everReady = false;
  #failures = 0;
  #openUntil = 0;
  #openFor = BREAKER_MIN_MS;
  #probing = false;
  #learned = 1;
  /** Recent heartbeat counts (monotonic ms, processes): the share uses the largest. */
  #seen: [number, number][] = [];
  #calls = 0;
  #errors = 0;
  #timeouts = 0;
  #fallbacks = 0;
  #lastError: string | undefined;
  #lastReportAt: number | undefined;
  #closed = false;
  /** Called once Redis is (again) connected and the scripts are loaded (the runtime reports then). */
  onConnected: (() => void) | undefined;

  constructor(o: RedisStoreOptions) {
    this.#o = o;
    this.clock = o.clock;
    this.wall = o.wall;
    this.#redis = o.connection;
    this.#table = new CounterTable();
    this.#prefix = `mwrl:{${o.domain}`;
    this.#redis.onReadyChange = (ready) => {
      if (!ready) return;
      this.#everReady = true;
      // A reconnected Redis is worth a probe now, not at the end of the breaker's wait.
      if (this.#openUntil > 0) this.#openUntil = this.clock();
      this.#redis.load([TAKE, REPORT]).then(
        () => this.onConnected?.(),
        () => this.onConnected?.(),
      );
    };
  }

  namespace(prefix: string): Namespace {
    return this.#table.namespace(prefix);
  }

  counter(ns: Namespace, key: string, limits: readonly CompiledLimit[]): Counter {
    return this.#table.get(ns, key, limits, this.clock, this.wall, this.#o.logger);
  }

  replicas(): number {
    return Math.max(1, this.#o.replicas() ?? this.#learned);
  }

  // ---- decisions ----

  take(c: Counter, n: number, _wall: number): TakeResult | Promise<TakeResult> {
    if (this.#o.mode === 'lease') {
      const now = this.clock();
      if (c.tokens > 0 && now >= c.leaseUntil) this.#expireLease(c);
      if (c.tokens >= n) {
        c.tokens -= n;
        c.via = VIA_LEASE;
        this.#note(c, n);
        if (
          c.refill === undefined &&
          c.tokens * 2 <= c.leaseSize &&
          now >= c.deniedUntil &&
          this.#usable(now)
        )
          this.#refill(c).then(noop, noop);
        return ALLOWED;
      }
      if (now < c.deniedUntil) {
        c.retryAfterMs = c.deniedUntil - now;
        return OVER_LIMIT;
      }
      if (!this.#usable(now)) return this.#fallback(c, n)[0];
      return this.#leaseWait(c, n, now);
    }
    if (!this.#usable(this.clock())) return this.#fallback(c, n)[0];
    return this.#exact(c, n);
  }

  refund(c: Counter, n: number): void {
    const now = this.clock();
    if (c.via === VIA_LEASE) {
      if (c.leaseUntil > now) c.tokens += n;
      return;
    }
    if (c.via === VIA_STORE && c.leaseWindows) {
      // Taken from Redis (exact mode): give it back with the next call.
      c.limits.forEach((_, i) => {
        addAdjust(c, i, -n, (c.leaseWindows as number[])[i] as number);
      });
      return;
    }
    refundLocal(c, shareOf(c.limits, this.replicas()), n, this.wall());
  }

  view(c: Counter, i: number, wall: number, out: LimitView): LimitView {
    const now = this.clock();
    if (c.storeFresh > now && c.storeRemaining && c.storeResetAt) {
      const lease = this.#o.mode === 'lease' && c.leaseUntil > now ? c.tokens : 0;
      out.remaining = (c.storeRemaining[i] ?? 0) + lease;
      out.resetMs = Math.max(0, (c.storeResetAt[i] ?? now) - now);
      return out;
    }
    const l = shareOf(c.limits, this.replicas())[i] as CompiledLimit;
    const s = c.state(l);
    out.remaining = available(l, s, wall);
    out.resetMs = resetIn(l, s, wall);
    return out;
  }

  async #leaseWait(c: Counter, n: number, started: number): Promise<TakeResult> {
    for (let round = 0; round < 2; round++) {
      c.demand += n;
      const refill = c.refill ?? this.#refill(c);
      const left = this.#o.timeoutMs - (this.clock() - started);
      // The refill goes on past our deadline (its tokens are kept); this request stops waiting.
      if (left <= 0 || !(await within(refill, left))) return this.#fallback(c, n)[0];
      const now = this.clock();
      if (c.tokens > 0 && now >= c.leaseUntil) this.#expireLease(c);
      if (c.tokens >= n) {
        c.tokens -= n;
        c.via = VIA_LEASE;
        this.#note(c, n);
        return ALLOWED;
      }
      if (now < c.deniedUntil) {
        c.retryAfterMs = c.deniedUntil - now;
        return OVER_LIMIT;
      }
      // The store failed, or other requests took this lease: one more round while time is left.
      if (!this.#usable(now)) break;
    }
    return this.#fallback(c, n)[0];
  }

  /**
   * Fetches the next lease. Never rejects; a lease that arrives after the requests waiting for it
   * gave up is kept (its tokens were taken from the store: dropping them would lose quota).
   */
  #refill(c: Counter): Promise<void> {
    const max = this.#leaseMax(c);
    const want = Math.max(Math.min(c.leaseSize, max), c.demand);
    c.demand = 0;
    const sent = this.clock();
    const tracked: Promise<void> = this.#take(c, want, 1, Math.min(want, max))
      .then((reply) => {
        if (reply === undefined) return;
        const granted = reply[0] as number;
        if (granted > 0) {
          const windows = windowsOf(reply, c.limits.length);
          if (c.tokens > 0 && c.leaseWindows && !sameWindows(c.leaseWindows, windows)) this.#expireLease(c);
          // A lease spent fast grows; a lease left half unused shrinks (see #expireLease).
          if (c.leaseAt > 0 && sent - c.leaseAt < LEASE_FAST_MS && c.tokens === 0)
            c.leaseSize = Math.min(max, c.leaseSize * 2);
          c.tokens += granted;
          c.leaseAt = sent;
          c.leaseWindows = windows;
          c.leaseUntil = sent + Math.min(LEASE_TTL_MS, minReset(reply, c.limits.length));
          c.deniedUntil = 0;
        } else c.deniedUntil = sent + Math.max(1, reply[1] as number);
      })
      .finally(() => {
        if (c.refill === tracked) c.refill = undefined;
      });
    c.refill = tracked;
    return tracked;
  }

  /** Unused tokens of a lease whose window ended go back to the store with the next call. */
  #expireLease(c: Counter): void {
    if (c.tokens > 0 && c.leaseWindows) {
      if (c.tokens * 2 > c.leaseSize) c.leaseSize = Math.max(1, c.leaseSize >> 1);
      for (let i = 0; i < c.limits.length; i++) addAdjust(c, i, -c.tokens, c.leaseWindows[i] as number);
    }
    c.tokens = 0;
    c.leaseUntil = 0;
  }

  async #exact(c: Counter, n: number): Promise<TakeResult> {
    const call = this.#take(c, n, n, n);
    if (!(await within(call, this.#o.timeoutMs))) {
      const [decided, local] = this.#fallback(c, n);
      // The store may still count this request: then undo whatever the fallback did with it.
      call.then((reply) => {
        if (reply === undefined || (reply[0] as number) < n) return;
        const windows = windowsOf(reply, c.limits.length);
        for (let i = 0; i < c.limits.length; i++)
          if (local !== undefined)
            addAdjust(c, i, -n, local[i] as number); // counted twice: once is enough
          else if (decided !== ALLOWED) addAdjust(c, i, -n, windows[i] as number); // refused here: give back
      }, noop);
      return decided;
    }
    const reply = await call;
    if (reply === undefined) return this.#fallback(c, n)[0];
    if ((reply[0] as number) >= n) {
      c.leaseWindows = windowsOf(reply, c.limits.length);
      c.via = VIA_STORE;
      this.#note(c, n);
      return ALLOWED;
    }
    c.retryAfterMs = Math.max(1, reply[1] as number);
    return OVER_LIMIT;
  }

  /**
   * What this process admits through the store also counts against its local share, so that a
   * fallback starting mid-window knows what this process already used: the window that spans an
   * outage stays near the limit instead of getting a fresh share on top.
   */
  #note(c: Counter, n: number): void {
    const wall = this.wall();
    const limits = shareOf(c.limits, this.replicas());
    for (let i = 0; i < limits.length; i++) {
      const l = limits[i] as CompiledLimit;
      const s = c.state(l);
      // available() rolls the window; a share already spent stays spent (no negative tokens).
      if (available(l, s, wall) >= n) consume(l, s, n, wall);
      else s.count += n;
    }
  }

  #leaseMax(c: Counter): number {
    if (this.#o.leaseMax !== undefined) return this.#o.leaseMax;
    let m = Number.POSITIVE_INFINITY;
    for (const l of c.limits) m = Math.min(m, Math.floor(l.requests / 20), l.gcra ? l.burst : m);
    return Math.max(1, m === Number.POSITIVE_INFINITY ? 1 : m);
  }

  /**
   * One TAKE call: the reply, or undefined when the store failed. Never rejects, never gives up
   * on a slow answer (the callers race it against their deadline); a call that outlives the
   * timeout counts as a failure for the breaker, and its late answer as a success.
   */
  #take(c: Counter, want: number, min: number, waitFor: number): Promise<number[] | undefined> {
    const m = c.limits.length;
    const args: string[] = [
      String(want),
      String(min),
      String(waitFor),
      this.#o.nowOverride?.() ?? '0',
      String(m),
    ];
    const adj = c.adjust;
    const adjW = c.adjustWindows;
    for (let i = 0; i < m; i++) {
      const l = c.limits[i] as CompiledLimit;
      args.push(
        String(l.code),
        String(l.requests),
        String(l.gcra ? l.burst : 0),
        String(adj?.[i] ?? 0),
        String(adjW?.[i] ?? 0),
      );
    }
    c.adjust = undefined;
    c.adjustWindows = undefined;
    const sent = this.clock();
    return this.#call(TAKE, [`${this.#prefix}|${c.id}}`], args).then((r) => {
      const reply = r as number[] | undefined;
      if (reply === undefined) {
        // Not settled: keep the adjustments for the next call (newer ones merged in meanwhile).
        if (adj && adjW) for (let i = 0; i < m; i++) addAdjust(c, i, adj[i] as number, adjW[i] as number);
        return undefined;
      }
      if (c.storeRemaining?.length !== m) c.storeRemaining = new Array(m).fill(0);
      if (c.storeResetAt?.length !== m) c.storeResetAt = new Array(m).fill(0);
      const rem = c.storeRemaining as number[];
      const reset = c.storeResetAt as number[];
      for (let i = 0; i < m; i++) {
        rem[i] = reply[2 + i * 3 + 1] as number;
        reset[i] = sent + (reply[2 + i * 3 + 2] as number);
      }
      c.storeFresh = sent + STORE_VIEW_MS;
      return reply;
    });
  }

  /**
   * The decision without the store (onFailure), and for `local`, the window starts the request
   * was counted in (it is charged to the store when it is back).
   */
  #fallback(c: Counter, n: number): [TakeResult, number[] | undefined] {
    this.#fallbacks++;
    c.via = VIA_LOCAL;
    const mode = this.#o.onFailure;
    // What Redis said last, if recent, still holds: a window it reported spent stays spent while
    // an answer is late (under overload, late answers are when a local share would overshoot).
    const now = this.clock();
    if (mode !== 'open' && c.storeFresh > now && c.storeRemaining && c.storeResetAt)
      for (let i = 0; i < c.limits.length; i++)
        if ((c.storeRemaining[i] as number) < n && (c.storeResetAt[i] as number) > now) {
          c.retryAfterMs = c.deniedUntil > now ? c.deniedUntil - now : 1_000;
          return [OVER_LIMIT, undefined];
        }
    if (mode === 'open') return [ALLOWED, undefined];
    if (mode === 'closed') {
      c.retryAfterMs = 1_000;
      return [STORE_DOWN, undefined];
    }
    const limits = shareOf(c.limits, this.replicas());
    const r = takeLocal(c, limits, n, this.wall());
    if (r !== ALLOWED) return [r, undefined];
    // Charged to Redis when it is back (window starts by this clock; Redis ignores a mismatch).
    const windows = limits.map((l) => c.state(l).winStart);
    for (let i = 0; i < limits.length; i++) addAdjust(c, i, n, windows[i] as number);
    return [r, windows];
  }

  // ---- the breaker and the calls ----

  /** True when a call may be made now (connected, breaker closed or ready for its probe). */
  #usable(now: number): boolean {
    if (this.#closed || !this.#redis.ready) return false;
    if (this.#openUntil === 0) return true;
    return now >= this.#openUntil && !this.#probing;
  }

  #call(script: Script, keys: string[], args: string[]): Promise<unknown> {
    const probe = this.#openUntil > 0;
    if (probe) this.#probing = true;
    this.#calls++;
    let settled = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      if (settled) return;
      timedOut = true;
      this.#timeouts++;
      this.#failed(`the Redis call took longer than ${this.#o.timeoutMs} ms`, probe);
      if (probe) this.#probing = false;
    }, this.#o.timeoutMs);
    timer.unref();
    return this.#redis.evalScript(script, keys, args).then(
      (reply) => {
        settled = true;
        clearTimeout(timer);
        this.#failures = 0;
        this.#openUntil = 0;
        this.#openFor = BREAKER_MIN_MS;
        if (probe) this.#probing = false;
        return reply;
      },
      (err: unknown) => {
        settled = true;
        clearTimeout(timer);
        // A call the timer already counted as failed is not counted twice.
        if (!timedOut) this.#failed(String((err as Error)?.message ?? err), probe);
        if (probe) this.#probing = false;
        return undefined;
      },
    );
  }

  #failed(msg: string, probe: boolean): void {
    this.#errors++;
    this.#lastError = msg;
    this.#failures++;
    if (!probe && this.#failures < BREAKER_FAILURES) return;
    if (this.#openUntil === 0)
      this.#o.logger.warn(
        { err: msg, forMs: this.#openFor },
        'rate limits: Redis failing; deciding without it (rateLimits.store.onFailure) until a probe succeeds',
      );
    this.#openUntil = this.clock() + this.#openFor;
    this.#openFor = Math.min(BREAKER_MAX_MS, this.#openFor * 2);
  }

  // ---- background work: settling, usage reports ----

  /**
   * Sends what counters owe the store (tokens of expired leases, requests admitted during an
   * outage), one call per counter, so quotas are not held by idle processes. Called by the
   * usage reporter's tick.
   */
  settle(): void {
    const now = this.clock();
    if (!this.#usable(now)) return;
    for (const c of this.#table.values()) {
      if (this.#o.mode === 'lease' && c.tokens > 0 && now >= c.leaseUntil) this.#expireLease(c);
      if (c.adjust !== undefined && c.refill === undefined) this.#take(c, 0, 0, 0).then(noop, noop);
    }
  }

  /** Reports usage rows (`scope|app|metric` fields and deltas) and this process's heartbeat. */
  async report(
    fields: readonly string[],
    deltas: readonly number[],
    intervalMs: number,
  ): Promise<UsageReply | undefined> {
    if (!this.#usable(this.clock())) return undefined;
    const args: string[] = [
      this.id,
      String(Math.max(3 * intervalMs, 3_000)),
      this.#o.nowOverride?.() ?? '0',
      String(fields.length),
    ];
    for (let i = 0; i < fields.length; i++) args.push(fields[i] as string, String(deltas[i]));
    const call = this.#call(REPORT, [`${this.#prefix}}:usage`, `${this.#prefix}}:replicas`], args);
    const reply = ((await within(call, Math.max(this.#o.timeoutMs, 1_000))) ? await call : undefined) as
      | number[]
      | undefined;
    if (reply === undefined) return undefined;
    // A restarted (empty) Redis knows only the processes that reported since: until the others'
    // heartbeats are due, the largest recent count stands (a smaller N would enlarge every share).
    const now = this.clock();
    const ttl = Math.max(3 * intervalMs, 3_000);
    this.#seen = this.#seen.filter(([at]) => now - at < ttl);
    this.#seen.push([now, Math.max(1, reply[1] as number)]);
    this.#learned = Math.max(...this.#seen.map(([, n]) => n));
    this.#lastReportAt = this.wall();
    const totals: number[][] = [];
    for (let i = 0; i < fields.length; i++) totals.push(reply.slice(2 + i * 4, 6 + i * 4) as number[]);
    return { replicas: this.#learned, totals, windows: reply.slice(2 + fields.length * 4) as number[] };
  }

  snapshot(): StoreSnapshot {
    const now = this.clock();
    const breaker = this.#openUntil === 0 ? 'closed' : now >= this.#openUntil ? 'half_open' : 'open';
    return {
      kind: 'redis',
      mode: this.#o.mode,
      state:
        this.#usable(now) || (this.#probing && this.#redis.ready)
          ? 'connected'
          : this.#everReady
            ? 'fallback'
            : 'connecting',
      onFailure: this.#o.onFailure,
      url: redactUrl(this.#o.url),
      timeoutMs: this.#o.timeoutMs,
      replicas: this.replicas(),
      counters: this.#table.size,
      calls: this.#calls,
      errors: this.#errors,
      timeouts: this.#timeouts,
      fallbackDecisions: this.#fallbacks,
      breaker,
      ...(this.#lastError !== undefined ? { lastError: this.#lastError } : {}),
      ...(this.#lastReportAt !== undefined
        ? { lastReportAt: new Date(this.#lastReportAt).toISOString() }
        : {}),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Unused lease tokens go back (bounded by the timeout), then the connection closes.
    const pending: Promise<unknown>[] = [];
    if (this.#usable(this.clock()))
      for (const c of this.#table.values()) {
        if (c.tokens > 0) this.#expireLease(c);
        if (c.adjust !== undefined) pending.push(this.#take(c, 0, 0, 0));
      }
    // Bounded: a Redis that does not answer keeps nobody from closing.
    await within(Promise.allSettled(pending), 1_000);
    this.#closed = true;
    await this.#redis.close();
  }
}

/** True when `p` settles within `ms` (it goes on either way). */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms, false);
    p.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

function addAdjust(c: Counter, i: number, n: number, window: number): void {
  const m = c.limits.length;
  if (c.adjust?.length !== m || c.adjustWindows?.length !== m) {
    c.adjust = new Array(m).fill(0);
    c.adjustWindows = new Array(m).fill(0);
  }
  const adj = c.adjust as number[];
  const win = c.adjustWindows as number[];
  if (win[i] === window) adj[i] = (adj[i] as number) + n;
  else {
    adj[i] = n;
    win[i] = window;
  }
}

function windowsOf(reply: number[], m: number): number[] {
  const w: number[] = [];
  for (let i = 0; i < m; i++) w.push(reply[2 + i * 3] as number);
  return w;
}

function minReset(reply: number[], m: number): number {
  let r = Number.POSITIVE_INFINITY;
  for (let i = 0; i < m; i++) r = Math.min(r, reply[2 + i * 3 + 2] as number);
  return r;
}

function sameWindows(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
