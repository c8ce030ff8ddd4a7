/**
 * Names that cannot be trusted as keys of a plain object, for config read from files, YAML or
 * code. Assigning `__proto__` replaces the object's prototype instead of adding a key (the entry
 * vanishes, and a shared prototype can be polluted), so it is refused wherever it appears. The
 * members of Object.prototype (`constructor`, `toString`, `hasOwnProperty`...) are found by a
 * plain `obj[name]` lookup on every object: config maps keyed by user names are read with
 * Object.hasOwn or built without a prototype, so these names are ordinary keys there.
 */
export const PROTO_KEY = '__proto__';

/** `constructor`, `toString`, `hasOwnProperty`, `__proto__`...: never the name of a config field. */
export const OBJECT_MEMBERS: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/** The message for a `__proto__` key, shared by createMesh, MESHWORK_CONFIG and fromIstio. */
export const PROTO_KEY_MESSAGE = '"__proto__" is a reserved name and cannot be used as a key';

function isPlainContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  if (Array.isArray(v)) return true;
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * The paths of the own `__proto__` keys in a JSON-like value (plain objects and arrays), in
 * document order, at most `limit` of them. Iterative, so any nesting depth is fine; a value seen
 * twice (a YAML alias, a shared object) is walked once.
 */
export function protoKeyPaths(value: unknown, limit = 20): (string | number)[][] {
  const found: (string | number)[][] = [];
  const seen = new WeakSet<object>();
  const stack: [unknown, (string | number)[]][] = [[value, []]];
  while (stack.length > 0 && found.length < limit) {
    const [v, path] = stack.pop() as [unknown, (string | number)[]];
    if (!isPlainContainer(v) || seen.has(v)) continue;
    seen.add(v);
    const children: [unknown, (string | number)[]][] = [];
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        children.push([x, [...path, i]]);
      });
    } else {
      for (const k of Object.keys(v)) {
        if (k === PROTO_KEY) found.push([...path, k]);
        children.push([v[k], [...path, k]]);
      }
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as [unknown, (string | number)[]]);
  }
  return found;
}

/** A fresh object without a prototype holding `entries`: `{}` for user-keyed maps. */
export function nullProtoRecord<V>(entries: Iterable<readonly [string, V]> = []): Record<string, V> {
  const out = Object.create(null) as Record<string, V>;
  for (const [k, v] of entries) out[k] = v;
  return out;
}
