/**
 * Optional peer dependencies (etcd3, consul, opossum, redis; @grpc/grpc-js and protobufjs for xds): loaded when a config first needs them,
 * from createMesh (never at import, never at the first request), so that a service on static or
 * DNS discovery installs and loads none of them. A missing one is a MissingDependencyError that
 * names the package to install.
 *
 * createRequire, not import(): createMesh is synchronous, and all four are CommonJS packages.
 * The build keeps the call as is (no static import for the bundler to follow or hoist).
 */
import { createRequire } from 'node:module';
import { MissingDependencyError } from './errors.ts';

export type OptionalPackage = 'etcd3' | 'consul' | 'opossum' | 'redis' | '@grpc/grpc-js' | 'protobufjs';

const loaded = new Map<OptionalPackage, unknown>();
let requireHere: NodeJS.Require | undefined;

/** `require(name)` from meshwork's own location, or a MissingDependencyError naming `feature`. */
export function loadOptional<T>(name: OptionalPackage, feature: string): T {
  if (loaded.has(name)) return loaded.get(name) as T;
  requireHere ??= createRequire(import.meta.url);
  let mod: unknown;
  try {
    mod = requireHere(name);
  } catch (err) {
    if (isNotFound(err, name)) throw new MissingDependencyError(name, feature, { cause: err });
    throw err;
  }
  loaded.set(name, mod);
  return mod as T;
}

function isNotFound(err: unknown, name: string): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return (
    (e?.code === 'MODULE_NOT_FOUND' || e?.code === 'ERR_MODULE_NOT_FOUND') &&
    typeof e.message === 'string' &&
    e.message.includes(`'${name}'`)
  );
}
