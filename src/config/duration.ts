/**
 * Durations as Istio writes them ("250ms", "2s", "1m", "1h", "1.5s", "1m30s") or a number of
 * milliseconds. Returns milliseconds, or undefined when the value is not a duration (including
 * one too large to be a finite number, such as a 400-digit string).
 */
export function parseDuration(value: unknown): number | undefined {
  const ms = readDuration(value);
  return ms !== undefined && Number.isFinite(ms) ? ms : undefined;
}

const UNIT_MS: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)/y;

/**
 * parseDuration, except that a well-formed value too large for a number reads as Infinity, so
 * the config schema can say it is too long rather than that it is not a duration.
 */
export function readDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string' || value.length === 0) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== start) return undefined;
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  }
  return total;
}
