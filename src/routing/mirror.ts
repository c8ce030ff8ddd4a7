/**
 * Mirroring decisions. The pipeline sends the copy fire-and-forget; these pieces decide whether
 * a copy goes at all. A copy never waits for room: when `max` copies are already in flight the
 * new one is dropped (and counted), so mirroring cannot queue, delay or fail the main request.
 */

export type Random = () => number;

/** Default bound on mirrored requests in flight per mesh (Envoy has no such bound; we do). */
export const DEFAULT_MAX_CONCURRENT_MIRRORS = 16;

export class MirrorGate {
  readonly max: number;
  #inFlight = 0;
  #dropped = 0;
  #sent = 0;

  constructor(max: number = DEFAULT_MAX_CONCURRENT_MIRRORS) {
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`max must be an integer >= 0, got ${max}`);
    this.max = max;
  }

  /** Takes a slot for one copy, or returns false (and counts a drop) when none is free. */
  tryAcquire(): boolean {
    if (this.#inFlight >= this.max) {
      this.#dropped++;
      return false;
    }
    this.#inFlight++;
    this.#sent++;
    return true;
  }

  /** Gives back a slot taken by tryAcquire (call exactly once per successful tryAcquire). */
  release(): void {
    if (this.#inFlight > 0) this.#inFlight--;
  }

  get inFlight(): number {
    return this.#inFlight;
  }
  get dropped(): number {
    return this.#dropped;
  }
  get sent(): number {
    return this.#sent;
  }
}

/**
 * Whether this request is mirrored. As in Istio, a `mirror` without `mirrorPercentage` mirrors
 * every request; `percentage` is `mirrorPercentage.value` (0-100).
 */
export function shouldMirror(percentage: number | undefined, random: Random = Math.random): boolean {
  if (percentage === undefined || percentage >= 100) return true;
  return percentage > 0 && random() * 100 < percentage;
}

/**
 * The authority a mirrored copy carries, as Envoy writes it: "-shadow" appended to the host
 * (`reviews:9080` -> `reviews-shadow:9080`), so the receiver can tell copies apart.
 */
export function shadowAuthority(authority: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(:\d+)?$/.exec(authority);
  if (!m) return `${authority}-shadow`;
  return `${m[1]}-shadow${m[2] ?? ''}`;
}

export interface MirrorOptions {
  /** Bound on one copy (default 10 s): it is aborted after this, and its slot freed. */
  timeoutMs?: number;
  /** Told about a copy that failed (the main request never is). */
  onError?: (err: unknown) => void;
}

export const DEFAULT_MIRROR_TIMEOUT_MS = 10_000;

/**
 * Starts one fire-and-forget copy: takes a gate slot (or returns false at once), calls `send`
 * with an AbortSignal bounded by `timeoutMs`, and frees the slot when it settles. It never
 * throws and never makes the caller wait; what `send` resolves to is discarded.
 */
export function startMirror(
  gate: MirrorGate,
  send: (signal: AbortSignal) => Promise<unknown>,
  options: MirrorOptions = {},
): boolean {
  if (!gate.tryAcquire()) return false;
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error('mirror timed out')),
    options.timeoutMs ?? DEFAULT_MIRROR_TIMEOUT_MS,
  );
  timer.unref();
  let settled: Promise<unknown>;
  try {
    settled = Promise.resolve(send(controller.signal));
  } catch (err) {
    settled = Promise.reject(err);
  }
  settled
    .catch((err: unknown) => {
      try {
        options.onError?.(err);
      } catch {
        // a failing error hook must not surface either
      }
    })
    .finally(() => {
      clearTimeout(timer);
      gate.release();
    });
  return true;
}
