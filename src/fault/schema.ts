/**
 * Config of the two kinds of injected failure a route can carry:
 * - `fault` (Istio's HTTPFaultInjection): decided once per request, before retries;
 * - `chaos` (meshwork extension, like Polly's Simmy): decided on every attempt, below retries.
 * See docs/routing.md ("Fault injection and chaos").
 */
import { z } from 'zod';
import { duration, percentage } from '../config/zod-helpers.ts';

/** An HTTP status a fault may answer with. */
export const faultStatus = z.number().int().min(200).max(599);

/**
 * `percentage` is required: Istio's docs once said "if not specified, all requests", while Envoy
 * injects nothing without it (istio/istio#36303). meshwork refuses to guess.
 */
const required = percentage;

/** gRPC status codes by name, as Istio's `grpcStatus` takes them. */
export const GRPC_STATUS: Readonly<Record<string, number>> = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
});

export const faultSchema = z
  .strictObject({
    delay: z.strictObject({ fixedDelay: duration, percentage: required }).optional(),
    abort: z
      .strictObject({
        httpStatus: faultStatus.optional(),
        /** A gRPC status name (`UNAVAILABLE`): answered as gRPC does, HTTP 200 with `grpc-status`. */
        grpcStatus: z
          .enum(Object.keys(GRPC_STATUS) as [string, ...string[]], { message: 'is not a gRPC status name' })
          .optional(),
        percentage: required,
      })
      .refine((a) => (a.httpStatus === undefined) !== (a.grpcStatus === undefined), {
        message: 'needs exactly one of httpStatus and grpcStatus',
      })
      .optional(),
  })
  .refine((f) => f.delay !== undefined || f.abort !== undefined, { message: 'needs delay or abort' });

export const chaosSchema = z
  .strictObject({
    /** Extra latency before the attempt is sent. */
    latency: z.strictObject({ fixedDelay: duration, percentage: required }).optional(),
    /** The attempt answers this status without reaching the endpoint. */
    abort: z.strictObject({ httpStatus: faultStatus, percentage: required }).optional(),
    /** The attempt fails as a connection reset (no response). */
    reset: z.strictObject({ percentage: required }).optional(),
  })
  .refine((c) => c.latency !== undefined || c.abort !== undefined || c.reset !== undefined, {
    message: 'needs latency, abort or reset',
  });

export type FaultConfig = z.output<typeof faultSchema>;
export type ChaosConfig = z.output<typeof chaosSchema>;
