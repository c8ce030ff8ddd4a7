/** The request context the mesh carries, and the standard headers it knows. */

export const BAGGAGE_HEADER = 'baggage';
/** Remaining milliseconds of the caller's deadline (defined with the retry layer's timeouts). */
export { DEADLINE_HEADER } from '../retry/deadline.ts';
/** Default header of the gateway's signed context token. */
export const DEFAULT_TOKEN_HEADER = 'x-meshwork-context-token';

/** W3C trace-context version 00 `traceparent` (other versions are forwarded if their prefix parses). */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$/;

export function validTraceparent(v: string): boolean {
  return TRACEPARENT.test(v) && !v.startsWith('ff') && !/^..-0{32}-/.test(v) && !/^..-.{32}-0{16}-/.test(v);
}

/** What `mesh.context()` returns. Immutable; `withContext` makes a new one. */
export interface MeshContext {
  /** Headers added to every outbound request (lowercase names): gateway headers, trace, baggage, token. */
  readonly headers: Readonly<Record<string, string>>;
  /** The caller's SPIFFE ID, when it came over verified mTLS. */
  readonly principal?: string | undefined;
  /** Absolute deadline on the mesh clock (ms), from `x-meshwork-deadline`. */
  readonly deadlineAt?: number | undefined;
}

/** What `mesh.withContext()` takes. */
export interface ContextInit {
  headers?: Record<string, string | undefined>;
  principal?: string | undefined;
  /** Remaining time budget in ms (sent downstream as `x-meshwork-deadline`). */
  deadlineMs?: number | undefined;
}
