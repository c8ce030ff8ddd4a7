/**
 * Named node:diagnostics_channel channels. Anyone can subscribe
 * (`diagnostics_channel.subscribe('meshwork:request:end', fn)`); meshwork builds and publishes a
 * message only when the channel has subscribers, so an unobserved channel costs one property read.
 * Message shapes are the exported interfaces below (also in docs/telemetry.md). Messages are
 * plain objects; a request's start, end and error messages are the same object, filled in as the
 * request progresses (as undici does with its own channels), so a subscriber that keeps a
 * reference sees the final values.
 */
import dc from 'node:diagnostics_channel';

export const CHANNELS = {
  requestStart: 'meshwork:request:start',
  requestEnd: 'meshwork:request:end',
  requestError: 'meshwork:request:error',
  retry: 'meshwork:retry',
  retryBudgetExhausted: 'meshwork:retry_budget:exhausted',
  endpointEjected: 'meshwork:endpoint:ejected',
  circuitBreakerState: 'meshwork:circuit_breaker:state',
  discoveryChange: 'meshwork:discovery:change',
  discoveryError: 'meshwork:discovery:error',
  /** A live config update, applied or refused (message: ConfigUpdateMessage, src/live/controller.ts). */
  configUpdate: 'meshwork:config:update',
} as const;

/** One logical request (all its attempts). Published on start, then on end or error. */
export interface RequestMessage {
  /** Process-unique id of the logical request. */
  id: number;
  service: string;
  /** The authority the caller addressed (`travels`, `travels:8080`). */
  authority: string;
  method: string;
  /** The request target as sent (path and query, not redacted: channels stay in-process). */
  path: string;
  /** Monotonic ms (the mesh clock) when the request entered the mesh. */
  startTime: number;
  /** Set by routing when known. */
  subset?: string | undefined;
  route?: string | undefined;
  /** Filled on end/error. */
  statusCode?: number | undefined;
  durationMs?: number | undefined;
  /** Number of attempts dispatched to endpoints (1 = no retry). */
  attempts?: number | undefined;
  /** Address of the endpoint of the last attempt. */
  endpoint?: string | undefined;
  /** On error: the error, and its `error.type` (MESHWORK_ERR_* code, UND_ERR_* code or class name). */
  error?: Error | undefined;
  errorType?: string | undefined;
}

export interface RetryMessage {
  service: string;
  /** The attempt about to be sent (1 = first retry). */
  attempt: number;
  /** Why: `5xx`, `reset`, `connect-failure`, `retriable-status-codes`, `timeout`... */
  reason: string;
  /** The endpoint whose failure caused the retry, when known. */
  endpoint?: string | undefined;
  /** Backoff before the retry, when known. */
  delayMs?: number | undefined;
}

export interface RetryBudgetExhaustedMessage {
  service: string;
  /** The retry that the budget refused. */
  attempt?: number | undefined;
  reason?: string | undefined;
}

export interface EjectionMessage {
  service: string;
  endpoint: string;
  /** `consecutive-5xx`, `consecutive-gateway-errors`, `consecutive-local-origin-failures`, `success-rate`... */
  reason: string;
  /** How long the endpoint stays ejected. */
  durationMs: number;
  /** How many times this endpoint has been ejected (including this one), when known. */
  ejections?: number | undefined;
}

export type { CircuitState } from '../breaker/breaker.ts';

import type { CircuitState } from '../breaker/breaker.ts';

export interface CircuitBreakerMessage {
  service: string;
  endpoint?: string | undefined;
  state: CircuitState;
  previous?: CircuitState | undefined;
}

export interface DiscoveryChangeMessage {
  service: string;
  provider: string;
  /** Addresses that appeared. */
  added: string[];
  /** Addresses already known whose labels, weight or zone changed. */
  updated: string[];
  /** Addresses that went away (they drain). */
  removed: string[];
  /** Marked unhealthy / healthy again by active health checks (still in the set). */
  unhealthy: string[];
  healthy: string[];
  /** Live endpoints after the change. */
  total: number;
}

export interface DiscoveryErrorMessage {
  service: string;
  provider: string;
  /** `registry`: the registry could not be read (last known endpoints kept); `record`: one record skipped. */
  kind: 'registry' | 'record';
  error: Error | string;
  record?: unknown;
}

export const requestStartChannel = dc.channel(CHANNELS.requestStart);
export const requestEndChannel = dc.channel(CHANNELS.requestEnd);
export const requestErrorChannel = dc.channel(CHANNELS.requestError);
export const retryChannel = dc.channel(CHANNELS.retry);
export const retryBudgetChannel = dc.channel(CHANNELS.retryBudgetExhausted);
export const ejectionChannel = dc.channel(CHANNELS.endpointEjected);
export const circuitBreakerChannel = dc.channel(CHANNELS.circuitBreakerState);
export const discoveryChangeChannel = dc.channel(CHANNELS.discoveryChange);
export const discoveryErrorChannel = dc.channel(CHANNELS.discoveryError);

/** True when anyone listens to a request channel (the request layer's cheap check). */
export function requestChannelsActive(): boolean {
  return (
    requestStartChannel.hasSubscribers ||
    requestEndChannel.hasSubscribers ||
    requestErrorChannel.hasSubscribers
  );
}

export function publishRetry(msg: RetryMessage): void {
  if (retryChannel.hasSubscribers) retryChannel.publish(msg);
}

export function publishRetryBudgetExhausted(msg: RetryBudgetExhaustedMessage): void {
  if (retryBudgetChannel.hasSubscribers) retryBudgetChannel.publish(msg);
}

export function publishEjection(msg: EjectionMessage): void {
  if (ejectionChannel.hasSubscribers) ejectionChannel.publish(msg);
}

export function publishCircuitBreakerState(msg: CircuitBreakerMessage): void {
  if (circuitBreakerChannel.hasSubscribers) circuitBreakerChannel.publish(msg);
}

export function publishDiscoveryChange(msg: DiscoveryChangeMessage): void {
  if (discoveryChangeChannel.hasSubscribers) discoveryChangeChannel.publish(msg);
}

export function publishDiscoveryError(msg: DiscoveryErrorMessage): void {
  if (discoveryErrorChannel.hasSubscribers) discoveryErrorChannel.publish(msg);
}
