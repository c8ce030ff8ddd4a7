/** Request headers as the pipeline carries them: lowercase names, string or string[] values. */
export type HeaderRecord = Record<string, string | string[]>;

/**
 * Normalizes any header shape undici accepts (flat [k, v, k, v] array, array of pairs,
 * object, Headers or another iterable of pairs) into a fresh lowercase record. One pass,
 * done once per request at the top of the pipeline, so layers can read and set headers cheaply.
 */
export function normalizeHeaders(input: unknown): HeaderRecord {
  const out: HeaderRecord = Object.create(null);
  if (input == null) return out;
  if (Array.isArray(input)) {
    if (input.length > 0 && Array.isArray(input[0])) {
      for (const pair of input as [unknown, unknown][]) add(out, pair[0], pair[1]);
    } else {
      for (let i = 0; i + 1 < input.length; i += 2) add(out, input[i], input[i + 1]);
    }
    return out;
  }
  if (typeof (input as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const pair of input as Iterable<[unknown, unknown]>) add(out, pair[0], pair[1]);
    return out;
  }
  for (const key of Object.keys(input as object)) add(out, key, (input as Record<string, unknown>)[key]);
  return out;
}

function add(out: HeaderRecord, rawKey: unknown, value: unknown): void {
  if (value === undefined || value === null) return;
  const key = String(rawKey).toLowerCase();
  if (Array.isArray(value)) {
    for (const v of value) add(out, key, v);
    return;
  }
  const v = typeof value === 'string' ? value : String(value);
  const prev = out[key];
  if (prev === undefined) out[key] = v;
  else if (Array.isArray(prev)) prev.push(v);
  else out[key] = [prev, v];
}

/** First value of a header, or undefined. */
export function headerValue(headers: HeaderRecord, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
