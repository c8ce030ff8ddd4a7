/**
 * Per-call overrides: what a caller may reasonably set on one request, over the route's and the
 * service's config: the timeout, the retries, and a subset pin. Given as `meshwork` in the init
 * of `mesh.fetch`, or around any client with `mesh.withCallOptions(options, fn)` (an
 * AsyncLocalStorage scope the dispatcher reads when a request enters the mesh). Validated like
 * config: a bad value is a MeshworkConfigError naming the field.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { z } from 'zod';
import { formatIssues } from '../config/load.ts';
import { duration } from '../config/zod-helpers.ts';
import { MeshworkConfigError } from '../errors.ts';
import type { RetryPolicy } from '../retry/policy.ts';
import { retriesSchema } from '../retry/schema.ts';

/** What a caller gives (durations as "2s" or ms, as in config). */
export interface MeshCallOptions {
  /** Covers every attempt of this call; replaces the route's or service's `timeout`. 0 = none. */
  timeout?: string | number | undefined;
  /**
   * A number: retries after the first attempt (0 = none). An object: Istio HTTPRetry fields
   * (`attempts`, `perTryTimeout`, `retryOn`, `retryNonIdempotent`, `retryAfterMax`), each
   * replacing the same field of the route's or service's retries; the others stay.
   */
  retries?:
    | number
    | {
        attempts?: number | undefined;
        perTryTimeout?: string | number | undefined;
        retryOn?: string | (string | number)[] | undefined;
        retryNonIdempotent?: boolean | undefined;
        retryAfterMax?: string | number | undefined;
      }
    | undefined;
  /** Sends the call to this subset of its destination service (the routes still match and rewrite). */
  subset?: string | undefined;
}

// Hedging needs the service's hedge budget, which only a configured hedge has: not per call.
const callRetries = retriesSchema.omit({ hedge: true, retryRemoteLocalities: true });

const callSchema = z.strictObject({
  timeout: duration.optional(),
  retries: z.union([z.number().int().min(0).max(10), callRetries]).optional(),
  subset: z.string().min(1).optional(),
});

type CallRetries = z.output<typeof callRetries>;

/** The validated overrides a request carries (`MeshRequest.call`). */
export interface CallOverrides {
  /** ms; 0 = no timeout; undefined = not overridden. */
  readonly timeoutMs: number | undefined;
  readonly retries: CallRetries | undefined;
  readonly subset: string | undefined;
}

/** Validates a caller's options; throws MeshworkConfigError naming `<where>.<field>`. */
export function compileCallOptions(input: unknown, where = 'meshwork'): CallOverrides | undefined {
  if (input === undefined) return undefined;
  const r = callSchema.safeParse(input, { reportInput: true });
  if (!r.success) throw new MeshworkConfigError(formatIssues(r.error.issues, [where]));
  const { timeout, retries, subset } = r.data;
  if (timeout === undefined && retries === undefined && subset === undefined) return undefined;
  return {
    timeoutMs: timeout,
    retries: typeof retries === 'number' ? { attempts: retries } : retries,
    subset,
  };
}

/** The policy a call runs with: `base` (the route's or service's) with the call's fields over it. */
export function withCallOverrides(base: RetryPolicy, call: CallOverrides): RetryPolicy {
  const r = call.retries;
  if (r === undefined && call.timeoutMs === undefined) return base;
  return {
    ...base,
    attempts: r?.attempts ?? base.attempts,
    retryOn: r?.retryOn ?? base.retryOn,
    perTryTimeoutMs: r?.perTryTimeout !== undefined ? r.perTryTimeout || undefined : base.perTryTimeoutMs,
    retryNonIdempotent: r?.retryNonIdempotent ?? base.retryNonIdempotent,
    retryAfterMaxMs: r?.retryAfterMax ?? base.retryAfterMaxMs,
    timeoutMs: call.timeoutMs !== undefined ? call.timeoutMs || undefined : base.timeoutMs,
  };
}

const scope = new AsyncLocalStorage<CallOverrides>();
/** Until someone opens a scope, the dispatcher does not even look (one boolean read per request). */
let scoped = false;

/** Runs fn with the overrides applying to every mesh request it makes (and their continuations). */
export function runWithCall<T>(call: CallOverrides | undefined, fn: () => T): T {
  if (call === undefined) return fn();
  scoped = true;
  return scope.run(call, fn);
}

/** The overrides in scope for a request entering the mesh now. */
export function currentCall(): CallOverrides | undefined {
  return scoped ? scope.getStore() : undefined;
}
