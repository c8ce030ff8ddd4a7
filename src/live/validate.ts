/**
 * Validation for live updates, with the same verdict as validateConfig, at the cost of what
 * changed: each service's validated config is kept under its input (as JSON), so an update of one
 * service in a thousand validates one. What is checked each time: reserved keys, the top level and
 * the service names, every service not validated before, and the references across services.
 * Whenever any of these finds a problem, validateConfig runs on the whole document, so the error
 * (its lines, their order) is exactly the one createMesh gives.
 */
import { assertConfigObject, validateConfig } from '../config/load.ts';
import { nullProtoRecord, protoKeyPaths } from '../config/reserved.ts';
import {
  crossServiceIssues,
  type MeshConfig,
  meshConfigSchema,
  type ServiceConfig,
  serviceSchema,
} from '../config/schema.ts';

/** Stands in for each service while the top level and the names are checked. */
const PLACEHOLDER = Object.freeze({ discovery: Object.freeze({ static: Object.freeze([]) }) });

export class IncrementalValidator {
  #cache = new Map<string, ServiceConfig>();

  validate(input: unknown): MeshConfig {
    assertConfigObject(input);
    const doc = input as Record<string, unknown>;
    const services = doc.services;
    if (!isPlainObject(services) || protoKeyPaths(input).length > 0) return this.#full(input);
    const skeleton: Record<string, unknown> = { ...doc };
    skeleton.services = nullProtoRecord(Object.keys(services).map((name) => [name, PLACEHOLDER] as const));
    const top = meshConfigSchema.safeParse(skeleton);
    if (!top.success) return this.#full(input);
    const next = new Map<string, ServiceConfig>();
    const out = nullProtoRecord<ServiceConfig>();
    for (const [name, svc] of Object.entries(services)) {
      const key = inputKey(svc);
      let v = key === undefined ? undefined : (next.get(key) ?? this.#cache.get(key));
      if (v === undefined) {
        const r = serviceSchema.safeParse(svc);
        if (!r.success) return this.#full(input);
        v = r.data;
      }
      if (key !== undefined) next.set(key, v);
      out[name] = v;
    }
    if (crossServiceIssues({ ...top.data, services: out }).length > 0) return this.#full(input);
    this.#cache = next;
    return { ...top.data, services: out };
  }

  #full(input: unknown): MeshConfig {
    const config = validateConfig(input);
    this.#cache = new Map();
    return config;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * A service's input as JSON, or undefined when it holds anything JSON would not show faithfully
 * (a function, undefined, a class instance...): such an input is validated every time.
 */
function inputKey(svc: unknown): string | undefined {
  let faithful = true;
  const key = JSON.stringify(svc, function (this: unknown, k: string, v: unknown) {
    // A toJSON method showed something else than the object the schema would see.
    if ((this as Record<string, unknown>)[k] !== v) faithful = false;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) faithful = false;
      return v;
    }
    if (typeof v === 'object' && (Array.isArray(v) || isPlainObject(v))) return v;
    faithful = false;
    return null;
  });
  return faithful ? key : undefined;
}
