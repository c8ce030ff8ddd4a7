import { createHash } from 'node:crypto';
import type { MeshConfig } from '../config/schema.ts';

/**
 * A string for a piece of validated config, to tell whether it changed between two versions:
 * JSON, with Sets as sorted lists, Maps as entry lists, RegExps as their source, functions left
 * out. Keys keep the order of the document they came from (replicas reading the same document
 * get the same key; a document whose keys were only reordered counts as changed, which costs a
 * rebuild of what it configures, nothing more).
 */
export function configKey(value: unknown): string {
  return JSON.stringify(value, replacer) ?? 'undefined';
}

function replacer(_key: string, v: unknown): unknown {
  if (typeof v !== 'object' || v === null) {
    if (typeof v === 'bigint') return v.toString();
    return typeof v === 'function' ? undefined : v;
  }
  if (v instanceof Set) return [...v].map((x) => JSON.stringify(x, replacer)).sort();
  if (v instanceof Map) return [...v];
  if (v instanceof RegExp) return `/${v.source}/${v.flags}`;
  return v;
}

/** The key of a whole config, and of each service in it (computed once per update). */
export interface ConfigKeys {
  readonly key: string;
  readonly services: ReadonlyMap<string, string>;
}

/** Validated service configs are shared from one update to the next (src/live/validate.ts): key them once. */
const serviceKeys = new WeakMap<object, string>();

export function configKeys(config: MeshConfig): ConfigKeys {
  const services = new Map<string, string>();
  let key = configKey({ ...config, services: undefined });
  for (const [name, svc] of Object.entries(config.services)) {
    let k = serviceKeys.get(svc);
    if (k === undefined) {
      k = configKey(svc);
      serviceKeys.set(svc, k);
    }
    services.set(name, k);
    key += `\n${JSON.stringify(name)}:${k}`;
  }
  return { key, services };
}

/** sha256 of a config key, hex, shortened: the config's identity in the snapshot and on the channel. */
export function hashOfKey(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
