/**
 * Reading decoded Envoy messages (plain objects from the codec: snake_case fields, enums as
 * strings, unset fields absent) and collecting what is wrong with them, path by path.
 */

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

export const obj = (v: unknown): Obj | undefined => (isObj(v) ? v : undefined);
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
export const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

/** A google.protobuf wrapper (UInt32Value, BoolValue...): its value, or undefined when unset. */
export function wrapped<T = number>(v: unknown): T | undefined {
  const o = obj(v);
  if (!o) return undefined;
  // A wrapper set to 0 has no value on the wire.
  return (o.value ?? 0) as T;
}

export function wrappedBool(v: unknown): boolean | undefined {
  const o = obj(v);
  if (!o) return undefined;
  return o.value === true;
}

/** google.protobuf.Duration → ms; undefined when unset. */
export function durationMs(v: unknown): number | undefined {
  const o = obj(v);
  if (!o) return undefined;
  return (num(o.seconds) ?? 0) * 1000 + (num(o.nanos) ?? 0) / 1e6;
}

/** envoy.type.v3.FractionalPercent → percent (0-100). */
export function fractionPercent(v: unknown): number | undefined {
  const o = obj(v);
  if (!o) return undefined;
  const n = num(o.numerator) ?? 0;
  const d = o.denominator === 'TEN_THOUSAND' ? 10_000 : o.denominator === 'MILLION' ? 1_000_000 : 100;
  return Math.min(100, (n / d) * 100);
}

/** Escapes a literal for an RE2/JavaScript regex. */
export function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/** What is wrong with one resource (errors NACK it) and what was left out (warnings). */
export class Problems {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  error(path: string, message: string): void {
    this.errors.push(`${path}: ${message}`);
  }
  warn(path: string, message: string): void {
    this.warnings.push(`${path}: ${message}`);
  }
  get ok(): boolean {
    return this.errors.length === 0;
  }
}

/** A short rendering of a value for a message. */
export function show(v: unknown): string {
  try {
    const s = JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? `<${x.length} bytes>` : x));
    if (s === undefined) return String(v);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}
