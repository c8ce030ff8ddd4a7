/** Request headers as the pipeline carries them: lowercase names, string or string[] values. */
export type HeaderRecord = Record<string, string | string[]>;

/**
 * The object header records live in: no Object.prototype in its chain, so names such as
 * `constructor`, `toString` or `__proto__` are ordinary keys, as with Object.create(null); but
 * made by a constructor, so V8 keeps it in fast mode (Object.create(null) objects start in
 * dictionary mode, which made undici's header processing and every lookup measurably slower).
 */
const HeaderBag = function HeaderBag() {} as unknown as new () => HeaderRecord;
HeaderBag.prototype = Object.create(null);

/**
 * Normalizes any header shape undici accepts (flat [k, v, k, v] array, array of pairs,
 * object, Headers or another iterable of pairs) into a fresh lowercase record. One pass,
 * done once per request at the top of the pipeline, so layers can read and set headers cheaply.
 */
export function normalizeHeaders(input: unknown): HeaderRecord {
  const out = new HeaderBag();
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
export function headerValue(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  name: string,
): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}
