/**
 * Pure fault decisions. The pipeline asks once per request (`decideFault`, Istio semantics:
 * above retries, so an injected abort is never retried) and once per attempt (`decideChaos`,
 * below retries, so retries, outlier detection and breakers see the injected failure).
 * `random` returns a number in [0, 1) (Math.random or a seeded generator in tests).
 */
import { type ChaosConfig, type FaultConfig, GRPC_STATUS } from './schema.ts';

export type Random = () => number;

export interface FaultDecision {
  /** Wait this long before going on (milliseconds). */
  readonly delayMs?: number;
  /** Answer this status without sending the request. */
  readonly abortStatus?: number;
  /** Answer this gRPC status (HTTP 200, `grpc-status`) without sending the request. */
  readonly abortGrpc?: number;
}

export interface ChaosDecision extends FaultDecision {
  /** Fail this attempt as a connection reset (no response); wins over abortStatus. */
  readonly reset?: boolean;
}

/** The shared "nothing injected" answer: no allocation on the common path. */
export const NO_FAULT: FaultDecision & ChaosDecision = Object.freeze({});

/** True with probability `value`% (0 never, 100 always). */
export function hit(value: number, random: Random): boolean {
  return value >= 100 || (value > 0 && random() * 100 < value);
}

/**
 * Istio's fault: delay and abort are drawn independently; when both hit, the delay runs first,
 * then the abort answers (as Envoy's fault filter does).
 */
export function decideFault(fault: FaultConfig | undefined, random: Random = Math.random): FaultDecision {
  if (fault === undefined) return NO_FAULT;
  const delay = fault.delay !== undefined && hit(fault.delay.percentage.value, random);
  const abort = fault.abort !== undefined && hit(fault.abort.percentage.value, random);
  if (!delay && !abort) return NO_FAULT;
  return {
    ...(delay ? { delayMs: fault.delay!.fixedDelay } : {}),
    ...(abort && fault.abort!.httpStatus !== undefined ? { abortStatus: fault.abort!.httpStatus } : {}),
    ...(abort && fault.abort!.grpcStatus !== undefined
      ? { abortGrpc: GRPC_STATUS[fault.abort!.grpcStatus] }
      : {}),
  };
}

/**
 * Attempt-level chaos: latency, reset and abort are drawn independently for each attempt.
 * Latency runs first; then a reset (no response) wins over an abort (a response).
 */
export function decideChaos(chaos: ChaosConfig | undefined, random: Random = Math.random): ChaosDecision {
  if (chaos === undefined) return NO_FAULT;
  const latency = chaos.latency !== undefined && hit(chaos.latency.percentage.value, random);
  const reset = chaos.reset !== undefined && hit(chaos.reset.percentage.value, random);
  const abortDrawn = chaos.abort !== undefined && hit(chaos.abort.percentage.value, random);
  const abort = abortDrawn && !reset;
  if (!latency && !reset && !abort) return NO_FAULT;
  return {
    ...(latency ? { delayMs: chaos.latency!.fixedDelay } : {}),
    ...(reset ? { reset: true } : {}),
    ...(abort ? { abortStatus: chaos.abort!.httpStatus } : {}),
  };
}
