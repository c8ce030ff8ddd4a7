import type { Endpoint } from '../balancer/endpoint.ts';
import type { Clock } from '../clock.ts';
import { MeshAbortedError, MeshTimeoutError, requestFailure } from '../errors.ts';
import { isReplayable } from '../http/body-layer.ts';
import { withCallOverrides } from '../http/call-options.ts';
import { FINISHED } from '../http/forwarding-handler.ts';
import { headerValue } from '../http/headers.ts';
import { classify, DISCARDED, provablyNotSent } from '../outcome.ts';
import type {
  Dispatch,
  DispatchController,
  DispatchHandler,
  Layer,
  MeshRequest,
  ResponseHeaders,
  UpgradeSocket,
} from '../pipeline.ts';
import { backoffMs, parseRetryAfter } from './backoff.ts';
import { DEADLINE_HEADER, deadlineFromHeaders, setDeadlineHeader } from './deadline.ts';
import { LiveSet } from './live-set.ts';
import type { RetryPolicy } from './policy.ts';
import { retriesFailure, retriesStatus } from './retry-on.ts';

/** How long a hedge that lost may run on to its end when the route has no perTryTimeout. */
export const LOSER_DRAIN_MS = 1_000;

/** Methods retried on any retryOn condition (RFC 9110 idempotent methods). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** What a finished run keeps in place of its request (every path checks `#finished` first). */
const FINISHED_REQUEST = Object.freeze({ service: Object.freeze({ name: '' }) }) as unknown as MeshRequest;

/**
 * THE one place the retry layer reads its policy: the matched route's (set by routing), else the
 * service's, with the caller's per-call overrides (timeout, retries) over it.
 */
export function retryPolicyFor(req: MeshRequest): RetryPolicy {
  const base = req.retryPolicy ?? req.service.retry.policy;
  return req.call === undefined ? base : withCallOverrides(base, req.call);
}

/**
 * Retries, hedging, the request timeout and the deadline header. Above the balancer: each
 * attempt is a fresh pass through the balancer, which avoids the endpoints in `req.tried`.
 * The caller's handler sees one controller for the whole request; an answer that is retried
 * is discarded (aborted), never delivered. A timeout is delivered as a MESHWORK_ERR_TIMEOUT
 * error, not as a synthesized 504 (see docs/resilience.md).
 */
export function retryLayer(clock: Clock, random: () => number = Math.random): Layer {
  return (next) => (req, handler) => {
    new RetryRun(next, req, handler, retryPolicyFor(req), clock, random).start();
  };
}

class RetryRun implements DispatchController {
  readonly #next: Dispatch;
  #req: MeshRequest;
  #handler: DispatchHandler;
  readonly #policy: RetryPolicy;
  readonly #clock: Clock;
  readonly #random: () => number;
  /** POST/PATCH without Idempotency-Key: only retried when provably not sent. */
  readonly #safe: boolean;
  readonly #live = new LiveSet<Attempt>();
  /** The first attempt, whose endpoint seeds `tried` when a retry or hedge needs it. */
  #first: Attempt | undefined;
  #body: unknown;
  #replayable = true;
  #sends = 0;
  #retries = 0;
  /** Attempts that reached an endpoint, and the last one's address: for the final error. */
  #sent = 0;
  #lastEndpoint: string | undefined;
  #deadline: number | undefined;
  #winner: Attempt | undefined;
  #finished = false;
  #timer: NodeJS.Timeout | undefined;
  #waitTimer: NodeJS.Timeout | undefined;
  #hedgeTimer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #onSignal: (() => void) | undefined;
  /** Holds one of the service's maxRetries slots (from the first retry to the end). */
  #retrying = false;

  aborted = false;
  paused = false;
  reason: Error | null = null;

  constructor(
    next: Dispatch,
    req: MeshRequest,
    handler: DispatchHandler,
    policy: RetryPolicy,
    clock: Clock,
    random: () => number,
  ) {
    this.#next = next;
    this.#req = req;
    this.#handler = handler;
    this.#policy = policy;
    this.#clock = clock;
    this.#random = random;
    const method = String(req.opts.method).toUpperCase();
    this.#safe =
      IDEMPOTENT.has(method) ||
      policy.retryNonIdempotent ||
      req.opts.headers['idempotency-key'] !== undefined;
    this.#body = req.opts.body;
    req.service.retry.active++;
    // (Layer tests give a small fake of the service's retry state, without these.)
    req.service.retry.noteStarted?.();
  }

  get #service(): string {
    return this.#req.service.name;
  }

  start(): void {
    this.#handler.onRequestStart?.(this, {});
    if (this.#finished) return;
    const signal = (this.#req.opts as { signal?: AbortSignal }).signal;
    if (signal && typeof signal.addEventListener === 'function') {
      if (signal.aborted) {
        this.abort(signal.reason);
        return;
      }
      this.#signal = signal;
      this.#onSignal = () => this.abort(signal.reason);
      signal.addEventListener('abort', this.#onSignal, { once: true });
    }
    const p = this.#policy;
    // The request's deadline: its own timeout, or the time left of the inbound request it is
    // made for (x-meshwork-deadline, put there by the context layer), whichever ends first.
    // (No timeout and no deadline header, the common case: no clock reading needed.)
    const bounded = p.timeoutMs !== undefined || this.#req.opts.headers[DEADLINE_HEADER] !== undefined;
    const now = bounded ? this.#clock() : 0;
    const own = p.timeoutMs === undefined ? undefined : now + p.timeoutMs;
    const inherited = bounded ? deadlineFromHeaders(this.#req.opts.headers, now) : undefined;
    const deadline = inherited !== undefined && (own === undefined || inherited < own) ? inherited : own;
    if (deadline !== undefined) {
      this.#deadline = deadline;
      const ms = Math.max(0, deadline - now);
      const scope = deadline === own ? 'request' : 'deadline';
      if (ms <= 0) {
        // No time left at all: do not send a request nobody will wait for.
        this.#fail(new MeshTimeoutError(this.#service, 0, scope));
        return;
      }
      this.#timer = setTimeout(
        () => this.#fail(new MeshTimeoutError(this.#service, Math.round(ms), scope)),
        ms,
      );
      this.#timer.unref();
    }
    // Counted in the window the request entered the mesh in (its start time: no clock read).
    this.#req.service.retry.budget?.deposit(this.#req.startedAt);
    this.#req.service.retry.hedgeBudget?.deposit(this.#req.startedAt);
    // The body layer above (src/retry/replay-body.ts) already turned a short streamed body into
    // a Buffer; whatever is still a stream here is sent once and never replayed.
    this.#replayable = isReplayable(this.#body);
    this.#launch();
  }

  // ── the controller the caller holds ──

  abort(reason?: Error): void {
    if (this.#finished) return;
    this.aborted = true;
    this.reason = reason ?? new MeshAbortedError(this.#service);
    // The caller's own reason goes back to it untouched.
    this.#fail(this.reason, reason === undefined);
  }

  /** The winning attempt's raw headers: undici's fetch reads response headers from here. */
  get rawHeaders(): DispatchController['rawHeaders'] {
    return this.#winner?.controller?.rawHeaders;
  }

  /** The winning attempt's raw trailers, likewise. */
  get rawTrailers(): DispatchController['rawTrailers'] {
    return this.#winner?.controller?.rawTrailers;
  }

  pause(): void {
    this.paused = true;
    this.#winner?.controller?.pause();
  }

  resume(): void {
    this.paused = false;
    this.#winner?.controller?.resume();
  }

  // ── attempts ──

  #launch(): void {
    if (this.#finished) return;
    const p = this.#policy;
    const attemptNo = this.#sends++;
    let remaining = this.#deadline === undefined ? undefined : this.#deadline - this.#clock();
    if (p.perTryTimeoutMs !== undefined) remaining = Math.min(remaining ?? Infinity, p.perTryTimeoutMs);
    let attemptReq: MeshRequest;
    const opts0 = this.#req.opts as MeshRequest['opts'] & { signal?: unknown };
    if (attemptNo === 0 && remaining === undefined && opts0.signal == null) {
      // The common case: the first attempt needs no header or signal of its own, so it is sent
      // with the request object itself (retries below copy it; they never see its `endpoint`).
      attemptReq = this.#req;
    } else {
      if (attemptNo > 0) this.#trackTried(); // a hedge: the first attempt is still running
      // Attempts share the request's headers unless this one carries its own deadline header.
      let headers = this.#req.opts.headers;
      if (remaining !== undefined) {
        headers = { ...headers };
        setDeadlineHeader(headers, remaining);
      }
      // The caller's signal is this layer's business (start()); attempts are aborted through
      // their controllers. `signal: undefined` rather than `delete`, which would slow the object down.
      const opts = { ...this.#req.opts, headers, body: this.#body as never, signal: undefined };
      attemptReq = { ...this.#req, opts, attempt: attemptNo, endpoint: undefined };
    }
    const att = new Attempt(this);
    att.req = attemptReq;
    this.#first ??= att;
    this.#live.add(att);
    if (p.perTryTimeoutMs !== undefined) {
      const ms = p.perTryTimeoutMs;
      att.timer = setTimeout(() => att.timeOut(new MeshTimeoutError(this.#service, ms, 'per-try')), ms);
      att.timer.unref();
    }
    this.#next(attemptReq, att);
    if (p.hedge && this.#safe && this.#replayable && !this.#finished && !this.#winner) this.#armHedge();
  }

  /**
   * From the second attempt on, the request's `tried` set (which the balancer avoids and the
   * tried layer fills) exists; it starts with the first attempt's endpoint. Created only then,
   * so a request answered at the first try never allocates it.
   */
  #trackTried(failed?: Attempt): void {
    let tried = this.#req.tried;
    if (!tried) {
      tried = new Set<Endpoint>();
      const first = this.#first?.req;
      if (first) {
        if (first.endpoint) tried.add(first.endpoint);
        // Still waiting for discovery: the tried layer records its endpoint once it is picked.
        first.tried = tried;
      }
      this.#req.tried = tried;
    }
    // A failed attempt lets go of its request when it ends: record its endpoint now.
    const ep = failed?.req?.endpoint;
    if (ep) tried.add(ep);
  }

  #armHedge(): void {
    if (this.#hedgeTimer || this.#sends > this.#policy.attempts) return;
    const delay = this.#policy.hedge?.delayMs ?? 0;
    this.#hedgeTimer = setTimeout(() => {
      this.#hedgeTimer = undefined;
      if (this.#finished || this.#winner || this.#sends > this.#policy.attempts) return;
      if (this.#req.service.retry.hedgeBudget?.tryWithdraw() === false) return;
      this.#launch();
    }, delay);
    this.#hedgeTimer.unref();
  }

  /** An attempt got response headers: deliver it (true) or discard it and retry (false). */
  onAttemptResponse(att: Attempt, status: number, headers: ResponseHeaders): boolean {
    this.#noteSent(att);
    if (this.#finished || this.#winner) return false;
    const p = this.#policy;
    const grpc = headerValue(headers, 'grpc-status');
    if (!this.#safe && retriesStatus(p.retryOn, status, grpc)) this.#skippedUnsafe(String(status));
    if (this.#safe && retriesStatus(p.retryOn, status, grpc)) {
      this.#live.delete(att);
      clearTimeout(att.timer);
      if (this.#live.size > 0) return false; // a hedge is still running: wait for it
      const after = parseRetryAfter(headerValue(headers, 'retry-after'), Date.now());
      if (after !== undefined && after > p.retryAfterMaxMs) return this.#commit(att);
      if (this.#scheduleRetry(after, String(status), att)) return false;
      this.#live.add(att);
    }
    return this.#commit(att);
  }

  #commit(att: Attempt): true {
    this.#winner = att;
    clearTimeout(att.timer);
    clearTimeout(this.#hedgeTimer);
    clearTimeout(this.#waitTimer);
    if (this.#live.size !== 1 || !this.#live.has(att)) {
      // (Skipped in the common case, att alone.)
      // Hedging: the others lose. They are let run to their end (bounded), their answers thrown
      // away: their true round-trip time feeds the balancer, which would otherwise learn only
      // "slower than the winner" and keep sending to a slow replica (the tail would get worse
      // with hedging than without), and an HTTP/1.1 connection is kept instead of destroyed.
      const bound = this.#policy.perTryTimeoutMs ?? LOSER_DRAIN_MS;
      this.#live.forEach((other) => {
        if (other !== att) other.detach(bound);
      });
      this.#live.clear();
      this.#live.add(att);
    }
    if (this.paused) att.controller?.pause();
    return true;
  }

  /** Counts an attempt that reached an endpoint, once. */
  #noteSent(att: Attempt): void {
    if (att.counted) return;
    const ep = att.req?.endpoint;
    if (ep === undefined) return;
    att.counted = true;
    this.#sent++;
    this.#lastEndpoint = ep.address;
  }

  onAttemptError(att: Attempt, err: Error): void {
    this.#noteSent(att);
    if (this.#finished) return;
    this.#live.delete(att);
    clearTimeout(att.timer);
    if (this.#winner === att) {
      this.#fail(err);
      return;
    }
    if (this.#live.size > 0) return; // a hedge is still running
    const kind = classify(err);
    const allowed = this.#safe || provablyNotSent(kind);
    if (!allowed && retriesFailure(this.#policy.retryOn, kind)) this.#skippedUnsafe(kind);
    if (allowed && retriesFailure(this.#policy.retryOn, kind) && this.#scheduleRetry(undefined, kind, att))
      return;
    this.#fail(err);
  }

  /**
   * A retryOn condition matched, but the request is not idempotent and may have reached the
   * server, so it is not retried (Envoy would retry it): counted, and warned about once per service.
   */
  #skippedUnsafe(reason: string): void {
    if (this.#sends > this.#policy.attempts || !this.#replayable) return; // no retry was left anyway
    const r = this.#req.service.retry;
    r.nonIdempotentSkipped++;
    if (r.nonIdempotentSkipped === 1)
      r.onNonIdempotentSkip?.(String(this.#req.opts.method).toUpperCase(), reason);
  }

  #scheduleRetry(retryAfterMs: number | undefined, reason: string, failed: Attempt): boolean {
    const p = this.#policy;
    if (this.#sends > p.attempts || !this.#replayable) return false;
    const delay = retryAfterMs ?? backoffMs(this.#retries, p.backoffBaseMs, p.backoffMaxMs, this.#random);
    if (this.#deadline !== undefined && this.#clock() + delay >= this.#deadline) return false;
    const telemetry = this.#req.service.telemetry;
    const service = this.#req.service.retry;
    // connectionPool.http.maxRetries and trafficPolicy.retryBudget: a bound on requests retrying at once (Envoy).
    if (!this.#retrying && service.retrying >= (service.retryCap?.() ?? service.maxRetries)) {
      service.retryOverflows++;
      return false;
    }
    if (service.budget?.tryWithdraw() === false) {
      telemetry.retryBudgetExhausted({ req: this.#req, attempt: this.#retries + 1, reason });
      return false;
    }
    if (!this.#retrying) {
      this.#retrying = true;
      service.retrying++;
    }
    this.#retries++;
    if (p.avoidTried) this.#trackTried(failed);
    const endpoint = failed.req?.endpoint?.address;
    telemetry.retry({ req: this.#req, attempt: this.#retries, reason, delayMs: delay, endpoint });
    // No hedge during the backoff: the retry's own launch re-arms it.
    clearTimeout(this.#hedgeTimer);
    this.#hedgeTimer = undefined;
    this.#waitTimer = setTimeout(() => {
      this.#waitTimer = undefined;
      this.#launch();
    }, delay);
    // Not unref'd: this backoff is the request's own pending work (a script awaiting one
    // fetch must not exit in the middle of it). It is bounded by the backoff and the deadline.
    return true;
  }

  // ── delivery to the caller ──

  deliverStart(status: number, headers: ResponseHeaders, message: string | undefined): void {
    this.#handler.onResponseStart?.(this, status, headers, message);
  }

  deliverData(chunk: Buffer): void {
    this.#handler.onResponseData?.(this, chunk);
  }

  deliverEnd(trailers: ResponseHeaders): void {
    if (this.#finished) return;
    const handler = this.#handler;
    this.#cleanup();
    handler.onResponseEnd?.(this, trailers);
  }

  deliverUpgrade(att: Attempt, status: number, headers: ResponseHeaders, socket: UpgradeSocket): void {
    this.#commit(att);
    const handler = this.#handler;
    this.#cleanup();
    handler.onRequestUpgrade?.(this, status, headers, socket);
  }

  isWinner(att: Attempt): boolean {
    return this.#winner === att;
  }

  /**
   * The request failed: the caller gets the error in the one shape of docs/errors.md (`code`,
   * `attempts`, `endpoint`), unless it is the caller's own abort reason.
   */
  #fail(err: Error, annotate = true): void {
    if (this.#finished) return;
    const handler = this.#handler;
    if (annotate)
      this.#live.forEach((att) => {
        this.#noteSent(att);
      });
    this.#cleanup();
    this.#live.forEach(discardAttempt);
    handler.onResponseError?.(this, annotate ? requestFailure(err, this.#sent, this.#lastEndpoint) : err);
  }

  #cleanup(): void {
    this.#finished = true;
    this.#req.service.retry.active--;
    if (this.#retrying) this.#req.service.retry.retrying--;
    clearTimeout(this.#timer);
    clearTimeout(this.#waitTimer);
    clearTimeout(this.#hedgeTimer);
    this.#live.forEach(clearAttemptTimer);
    if (this.#signal && this.#onSignal) this.#signal.removeEventListener('abort', this.#onSignal);
    this.#signal = undefined;
    this.#onSignal = undefined;
    // Finished: let go of the caller's handler, the request and the body (each attempt lets go
    // of its own request when it ends). The transport and the caller's body stream may keep this
    // object referenced for a while after the end; the whole request must not stay alive with it
    // (see src/http/forwarding-handler.ts).
    this.#handler = FINISHED;
    this.#req = FINISHED_REQUEST;
    this.#body = undefined;
  }
}

const discardAttempt = (att: Attempt): void => att.discard();
const clearAttemptTimer = (att: Attempt): void => clearTimeout(att.timer);

/** One send: the handler given to the layers below for that attempt. */
class Attempt implements DispatchHandler {
  readonly #run: RetryRun;
  controller: DispatchController | undefined;
  /** This attempt's request (its `endpoint` is set once the balancer has picked). */
  req: MeshRequest | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Counted among the attempts that reached an endpoint (RetryRun.#noteSent). */
  counted = false;
  #discarded = false;
  #timedOut: Error | undefined;

  constructor(run: RetryRun) {
    this.#run = run;
  }

  discard(): void {
    if (this.#discarded) return;
    this.#discarded = true;
    clearTimeout(this.timer);
    this.controller?.abort(DISCARDED);
  }

  /**
   * Lost to another attempt: nothing of it reaches the caller any more, but it runs to its end
   * (its answer read and thrown away) for at most `boundMs`, then it is aborted. One not sent yet
   * is simply discarded.
   */
  detach(boundMs: number): void {
    if (this.#discarded) return;
    if (!this.controller) {
      this.discard();
      return;
    }
    this.#discarded = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller?.abort(DISCARDED), boundMs);
    this.timer.unref();
  }

  timeOut(err: Error): void {
    this.#timedOut = err;
    if (this.controller) {
      this.controller.abort(err);
      return;
    }
    // Still waiting: for discovery, or queued in the endpoint's pool for a connection, where
    // nothing can take it back out. It is over for the caller now, and it must never be sent
    // later: the transport aborts it the moment it starts it (onRequestStart).
    this.#discarded = true;
    this.#run.onAttemptError(this, err);
  }

  onRequestStart(controller: DispatchController): void {
    this.controller = controller;
    if (this.#discarded) controller.abort(this.#timedOut ?? DISCARDED);
  }

  onRequestUpgrade(
    _c: DispatchController,
    status: number,
    headers: ResponseHeaders,
    socket: UpgradeSocket,
  ): void {
    if (this.#discarded) return;
    this.#run.deliverUpgrade(this, status, headers, socket);
  }

  onResponseStart(_c: DispatchController, status: number, headers: ResponseHeaders, message?: string): void {
    if (this.#discarded) return;
    if (this.#run.onAttemptResponse(this, status, headers)) this.#run.deliverStart(status, headers, message);
    else this.discard();
  }

  onResponseData(_c: DispatchController, chunk: Buffer): void {
    if (!this.#discarded && this.#run.isWinner(this)) this.#run.deliverData(chunk);
  }

  onResponseEnd(_c: DispatchController, trailers: ResponseHeaders): void {
    if (!this.#discarded && this.#run.isWinner(this)) this.#run.deliverEnd(trailers);
    this.#release();
  }

  onResponseError(_c: DispatchController, err: Error): void {
    if (this.#discarded) {
      this.#release();
      return;
    }
    this.#discarded = true;
    this.#run.onAttemptError(this, this.#timedOut ?? err);
    this.#release();
  }

  /** Over: keep nothing of the request alive (see src/http/forwarding-handler.ts). */
  #release(): void {
    clearTimeout(this.timer);
    this.req = undefined;
    this.controller = undefined;
  }
}
