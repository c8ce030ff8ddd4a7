import { createHash } from 'node:crypto';

/**
 * A stable string for a piece of (validated) config, to tell whether it changed between two
 * versions: object keys sorted, Sets and Maps as sorted lists, RegExps as their source. Two
 * configs that mean the same give the same key; functions and undefined are left out.
 */
export function configKey(value: unknown): string {
  return JSON.stringify(normalize(value, 0)) ?? 'undefined';
}

/** sha256 of a config key, hex, shortened: the config's identity in the snapshot and on the channel. */
export function hashOfKey(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

function normalize(v: unknown, depth: number): unknown {
  if (depth > 64) return '[deep]';
  if (v === null || typeof v !== 'object') return typeof v === 'function' ? undefined : v;
  if (v instanceof RegExp) return `/${v.source}/${v.flags}`;
  if (v instanceof Set) return [...v].map((x) => normalize(x, depth + 1)).sort(compare);
  if (v instanceof Map)
    return [...v]
      .map(([k, x]) => [String(k), normalize(x, depth + 1)] as const)
      .sort((a, b) => compare(a[0], b[0]));
  if (Array.isArray(v)) return v.map((x) => normalize(x, depth + 1) ?? null);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) {
    const x = normalize((v as Record<string, unknown>)[k], depth + 1);
    if (x !== undefined) Object.defineProperty(out, k, { value: x, enumerable: true });
  }
  return out;
}

function compare(a: unknown, b: unknown): number {
  const x = JSON.stringify(a) ?? '';
  const y = JSON.stringify(b) ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}
