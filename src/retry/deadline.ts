import type { HeaderRecord } from '../http/headers.ts';

/**
 * The header that carries the time left to the next hop: `x-meshwork-deadline: <ms>`, an integer
 * number of milliseconds remaining when the attempt was sent (relative, like gRPC's grpc-timeout,
 * so no clock sync between hosts is needed; transit time is not subtracted).
 */
export const DEADLINE_HEADER = 'x-meshwork-deadline';

/** Largest value accepted from the wire (1 day); anything larger is treated as absent. */
const MAX_DEADLINE_MS = 86_400_000;

/**
 * The inbound side: reads the header and returns the absolute deadline on the caller's clock
 * (`now` + remaining ms), or undefined when it is absent or malformed.
 */
export function deadlineFromHeaders(
  headers: Record<string, string | string[] | undefined>,
  now: number,
): number | undefined {
  const raw = headers[DEADLINE_HEADER];
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined || !/^\s*\d{1,9}\s*$/.test(v)) return undefined;
  const ms = Number(v);
  if (ms > MAX_DEADLINE_MS) return undefined;
  return now + ms;
}

/** The outbound side: sets the header to the time left (never negative). */
export function setDeadlineHeader(headers: HeaderRecord, remainingMs: number): void {
  headers[DEADLINE_HEADER] = String(Math.max(0, Math.floor(remainingMs)));
}
