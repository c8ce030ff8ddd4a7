/**
 * The admin page's last minute, kept in-process: per service (logical requests, retries) and
 * per endpoint (attempts), one slot per second for 60 seconds, each slot a count, a failure
 * count, a retry count and a small fixed latency histogram. Recording is O(1): an index, a few
 * increments and one Math.log; a slot is cleared when its second comes round again. Reading
 * (once per admin poll) sums the 60 slots.
 *
 * Off until the first `mesh.adminHandler()` of the process (`enableStats()`): with no admin
 * page, no SDK and no subscriber the telemetry layer stays a pass-through.
 */

/** Seconds the window covers. */
export const WINDOW_SECONDS = 60;

/**
 * Latency buckets: bucket 0 holds ≤ 0.5 ms, bucket i holds (0.5·r^(i−1), 0.5·r^i] ms with
 * r = 1.5, the last one everything above 0.5·1.5^(BUCKETS−2) ms (about 76 s). A quantile read
 * from them is off by at most the width of its bucket (±25%), enough for an incident page.
 */
const BASE_MS = 0.5;
const RATIO = 1.5;
const BUCKETS = 31;
const LOG_RATIO = Math.log(RATIO);

// Per slot: count, failures, retries, then the buckets.
const COUNT = 0;
const FAILED = 1;
const RETRIES = 2;
const HIST = 3;
const STRIDE = HIST + BUCKETS;

let statsOn = false;

/** True once an admin handler exists: the telemetry layer then feeds the windows. */
export function statsEnabled(): boolean {
  return statsOn;
}

/** Called by `mesh.adminHandler()` (the telemetry benchmark also turns it off again). */
export function enableStats(on = true): void {
  statsOn = on;
}

/** Upper bound (ms) of bucket i. */
export function bucketUpperMs(i: number): number {
  return i >= BUCKETS - 1 ? Number.POSITIVE_INFINITY : BASE_MS * RATIO ** i;
}

function bucketOf(ms: number): number {
  if (!(ms > BASE_MS)) return 0;
  const i = Math.ceil(Math.log(ms / BASE_MS) / LOG_RATIO);
  return Math.min(i, BUCKETS - 1);
}

/** What one window says about the last minute. */
export interface WindowSummary {
  /** Requests (or attempts) that ended in the window. */
  requests: number;
  /** Per second, over the window (or over the time since it started, when shorter). */
  rps: number;
  /** Share of them that succeeded (no 5xx, no error), 0..1; undefined with no request. */
  successRate: number | undefined;
  /** Requests that failed. */
  failures: number;
  /** Retries sent (service windows only). */
  retries: number;
  /** Failures in a row up to the last one recorded (0 when the last succeeded). */
  consecutiveFailures: number;
  /** Latency quantiles in ms (interpolated within a bucket); undefined with no request. */
  p50Ms: number | undefined;
  p99Ms: number | undefined;
  /** Seconds the window covers now (up to 60: less while it is younger than a minute). */
  seconds: number;
}

/** One rolling minute. `now` is the mesh clock (monotonic ms). */
export class RollingWindow {
  readonly #data = new Uint32Array(WINDOW_SECONDS * STRIDE);
  /** The second each slot holds (−1: none). */
  readonly #second = new Float64Array(WINDOW_SECONDS).fill(-1);
  readonly #startedAt: number;
  #streak = 0;

  constructor(now: number) {
    this.#startedAt = now;
  }

  #slot(now: number): number {
    const sec = Math.floor(now / 1000);
    const i = sec % WINDOW_SECONDS;
    if (this.#second[i] !== sec) {
      this.#second[i] = sec;
      this.#data.fill(0, i * STRIDE, (i + 1) * STRIDE);
    }
    return i * STRIDE;
  }

  /** One request or attempt ended, after `ms`, failed or not. */
  record(now: number, ms: number, failed: boolean): void {
    const base = this.#slot(now);
    const d = this.#data;
    inc(d, base + COUNT);
    if (failed) {
      inc(d, base + FAILED);
      this.#streak++;
    } else this.#streak = 0;
    inc(d, base + HIST + bucketOf(ms));
  }

  /** A retry was sent. */
  retry(now: number): void {
    inc(this.#data, this.#slot(now) + RETRIES);
  }

  summary(now: number): WindowSummary {
    const sec = Math.floor(now / 1000);
    const d = this.#data;
    const hist = new Array<number>(BUCKETS).fill(0);
    let count = 0;
    let failed = 0;
    let retries = 0;
    for (let i = 0; i < WINDOW_SECONDS; i++) {
      const s = this.#second[i] as number;
      if (s < 0 || s <= sec - WINDOW_SECONDS || s > sec) continue;
      const base = i * STRIDE;
      count += d[base + COUNT] as number;
      failed += d[base + FAILED] as number;
      retries += d[base + RETRIES] as number;
      for (let b = 0; b < BUCKETS; b++) hist[b] = (hist[b] as number) + (d[base + HIST + b] as number);
    }
    const seconds = Math.max(1, Math.min(WINDOW_SECONDS, (now - this.#startedAt) / 1000));
    return {
      requests: count,
      rps: round(count / seconds),
      successRate: count === 0 ? undefined : round((count - failed) / count, 4),
      failures: failed,
      retries,
      consecutiveFailures: this.#streak,
      p50Ms: quantile(hist, count, 0.5),
      p99Ms: quantile(hist, count, 0.99),
      seconds: round(seconds, 1),
    };
  }
}

function inc(d: Uint32Array, i: number): void {
  d[i] = (d[i] as number) + 1;
}

/** Like Prometheus's histogram_quantile: linear within the bucket the rank falls in. */
function quantile(hist: readonly number[], count: number, q: number): number | undefined {
  if (count === 0) return undefined;
  const rank = q * count;
  let seen = 0;
  for (let b = 0; b < BUCKETS; b++) {
    const n = hist[b] as number;
    if (n === 0 || seen + n < rank) {
      seen += n;
      continue;
    }
    const lower = b === 0 ? 0 : bucketUpperMs(b - 1);
    // The open-ended last bucket: its lower bound is the best answer there is.
    if (b === BUCKETS - 1) return round(lower);
    const upper = bucketUpperMs(b);
    return round(lower + (upper - lower) * ((rank - seen) / n));
  }
  return undefined;
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Per route of a service: requests sent to each destination in the last minute. */
export class RouteWindow {
  readonly #perDestination: RollingWindow[] = [];
  readonly #startedAt: number;

  constructor(now: number) {
    this.#startedAt = now;
  }

  record(now: number, destination: number, ms: number, failed: boolean): void {
    let w = this.#perDestination[destination];
    if (w === undefined) {
      w = new RollingWindow(this.#startedAt);
      this.#perDestination[destination] = w;
    }
    w.record(now, ms, failed);
  }

  /** Requests per destination in the window, in the route's destination order. */
  observed(now: number, destinations: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < destinations; i++) out.push(this.#perDestination[i]?.summary(now).requests ?? 0);
    return out;
  }
}

/**
 * The rolling minute of one service: its logical requests and retries, each endpoint's
 * attempts (by endpoint object: a removed endpoint's window goes with it), each route's split.
 * Windows are made on first use.
 */
export class ServiceStats {
  #requests: RollingWindow | undefined;
  readonly #endpoints = new WeakMap<object, RollingWindow>();
  readonly #routes = new WeakMap<object, RouteWindow>();

  /** A logical request ended; `route`/`destination`: what routing chose, when it did. */
  request(now: number, ms: number, failed: boolean, route?: object, destination = -1): void {
    this.#requests ??= new RollingWindow(now);
    this.#requests.record(now, ms, failed);
    if (route !== undefined && destination >= 0) {
      let w = this.#routes.get(route);
      if (w === undefined) {
        w = new RouteWindow(now);
        this.#routes.set(route, w);
      }
      w.record(now, destination, ms, failed);
    }
  }

  /** A retry was sent. */
  retry(now: number): void {
    this.#requests ??= new RollingWindow(now);
    this.#requests.retry(now);
  }

  /** An attempt to `endpoint` ended. */
  attempt(endpoint: object, now: number, ms: number, failed: boolean): void {
    let w = this.#endpoints.get(endpoint);
    if (w === undefined) {
      w = new RollingWindow(now);
      this.#endpoints.set(endpoint, w);
    }
    w.record(now, ms, failed);
  }

  /** The service's last minute; undefined before anything was recorded. */
  requests(now: number): WindowSummary | undefined {
    return this.#requests?.summary(now);
  }

  endpoint(endpoint: object, now: number): WindowSummary | undefined {
    return this.#endpoints.get(endpoint)?.summary(now);
  }

  /** Requests per destination of a route in the last minute; undefined before any. */
  route(route: object, destinations: number, now: number): number[] | undefined {
    return this.#routes.get(route)?.observed(now, destinations);
  }
}
