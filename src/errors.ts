/**
 * Typed errors. Every meshwork error carries a stable `code` (`MESHWORK_ERR_*`) and a brand
 * (a registered symbol), so `isMeshworkError(err)` still works when two copies of the package
 * are loaded (where `instanceof` would fail).
 */

import { redactUrl } from './telemetry/url.ts';

const BRAND = Symbol.for('meshwork.error');

export const ErrorCodes = {
  CONFIG: 'MESHWORK_ERR_CONFIG',
  UNKNOWN_SERVICE: 'MESHWORK_ERR_UNKNOWN_SERVICE',
  NO_ENDPOINTS: 'MESHWORK_ERR_NO_ENDPOINTS',
  CLOSED: 'MESHWORK_ERR_CLOSED',
  TIMEOUT: 'MESHWORK_ERR_TIMEOUT',
  OVERFLOW: 'MESHWORK_ERR_OVERFLOW',
  CIRCUIT_OPEN: 'MESHWORK_ERR_CIRCUIT_OPEN',
  TLS_IDENTITY: 'MESHWORK_ERR_TLS_IDENTITY',
  TLS_REQUIRED: 'MESHWORK_ERR_TLS_REQUIRED',
  INVALID_URL: 'MESHWORK_ERR_INVALID_URL',
  ISTIO_UNSUPPORTED: 'MESHWORK_ERR_ISTIO_UNSUPPORTED',
  ABORTED: 'MESHWORK_ERR_ABORTED',
  INVALID_PATH: 'MESHWORK_ERR_INVALID_PATH',
  NODE_VERSION: 'MESHWORK_ERR_NODE_VERSION',
  MISSING_DEPENDENCY: 'MESHWORK_ERR_MISSING_DEPENDENCY',
  REQUEST_FAILED: 'MESHWORK_ERR_REQUEST_FAILED',
  UNSUPPORTED_REQUEST: 'MESHWORK_ERR_UNSUPPORTED_REQUEST',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class MeshworkError extends Error {
  readonly code: ErrorCode;
  readonly [BRAND] = true;
  /**
   * How many attempts of the request reached an endpoint before it failed: 0 when nothing was
   * sent (refused by the mesh, no endpoint), 1 without retries. Set when a request fails.
   */
  attempts = 0;
  /** The endpoint (`host:port`) of the last attempt sent; undefined when nothing was sent. */
  endpoint: string | undefined = undefined;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = 'MeshworkError';
  }

  /**
   * `instanceof` works across copies of the package (two versions in one node_modules tree):
   * any branded error is a MeshworkError, and one of a subclass's name is that subclass.
   */
  // `this` is the class `instanceof` asks about (a subclass too): that is the point here.
  // biome-ignore-start lint/complexity/noThisInStatic: the receiver is the subclass being tested
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (typeof value !== 'object' || value === null || (value as Record<symbol, unknown>)[BRAND] !== true)
      return false;
    return this === MeshworkError || (value as { name?: unknown }).name === this.name;
  }
  // biome-ignore-end lint/complexity/noThisInStatic: the receiver is the subclass being tested
}

/** One problem found while validating a config: where it is, what was there, what is wrong. */
export interface ConfigIssue {
  path: string;
  message: string;
}

export class MeshworkConfigError extends MeshworkError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
    super(
      ErrorCodes.CONFIG,
      lines.length === 1
        ? `invalid meshwork config: ${lines[0]}`
        : `invalid meshwork config:\n  ${lines.join('\n  ')}`,
    );
    this.name = 'MeshworkConfigError';
    this.issues = issues;
  }
}

export class UnknownServiceError extends MeshworkError {
  readonly service: string;
  constructor(service: string, known: readonly string[]) {
    super(
      ErrorCodes.UNKNOWN_SERVICE,
      `unknown service "${service}": it is not in the mesh config (known: ${known.length ? known.join(', ') : 'none'})`,
    );
    this.name = 'UnknownServiceError';
    this.service = service;
  }
}

export class NoEndpointsError extends MeshworkError {
  readonly service: string;
  constructor(service: string, detail: string) {
    super(ErrorCodes.NO_ENDPOINTS, `service "${service}" has no endpoint to send to (${detail})`);
    this.name = 'NoEndpointsError';
    this.service = service;
  }
}

export class MeshClosedError extends MeshworkError {
  constructor() {
    super(ErrorCodes.CLOSED, 'the mesh is closed');
    this.name = 'MeshClosedError';
  }
}

/** The server's certificate does not carry any identity the client expected. */
export class TlsIdentityError extends MeshworkError {
  readonly expected: readonly string[];
  readonly presented: readonly string[];
  constructor(service: string, where: string, expected: readonly string[], presented: readonly string[]) {
    super(
      ErrorCodes.TLS_IDENTITY,
      `TLS identity mismatch for service "${service}" at ${where}: expected one of [${expected.join(', ')}], ` +
        `the server presented [${presented.length ? presented.join(', ') : 'no subject alternative names'}]`,
    );
    this.name = 'TlsIdentityError';
    this.expected = expected;
    this.presented = presented;
  }
}

/**
 * An `https://` request whose destination service has no TLS configured: meshwork never sends it
 * in cleartext. Raised before anything is sent.
 */
export class TlsRequiredError extends MeshworkError {
  readonly service: string;
  constructor(service: string) {
    super(
      ErrorCodes.TLS_REQUIRED,
      `https:// request refused: service "${service}" has no TLS configured, and meshwork never sends ` +
        `an https:// request in cleartext. Configure services.${service}.trafficPolicy.tls ` +
        `(mode SIMPLE to verify the server, MUTUAL or ISTIO_MUTUAL for mTLS), or use http:// and let ` +
        `the service's trafficPolicy decide`,
    );
    this.name = 'TlsRequiredError';
    this.service = service;
  }
}

/**
 * A request URL (or dispatch origin) the mesh will not send: not a URL, a relative URL, or one
 * carrying credentials (`user:password@`). `url` is the URL as given with its userinfo replaced
 * by `REDACTED:REDACTED@`.
 */
export class InvalidUrlError extends MeshworkError {
  readonly url: string;
  /** `url` as given: it is redacted here. */
  constructor(given: string, problem: 'not-a-url' | 'credentials') {
    const url = redactUrl(given);
    super(
      ErrorCodes.INVALID_URL,
      problem === 'credentials'
        ? `URL "${url}" includes credentials (user:password@): refused, as fetch refuses it. meshwork ` +
            'never sends userinfo upstream, nor turns it into Basic auth: set an Authorization header instead'
        : isRelativeUrl(given)
          ? `"${url}" is a relative URL: meshwork has no base URL to resolve it against. Name the ` +
            `service in an absolute URL, such as ${absoluteHint(url)}`
          : `"${url}" is not a valid http:// or https:// URL (http://<service>/path)`,
    );
    this.name = 'InvalidUrlError';
    this.url = url;
  }
}

/** No scheme (`/trips`, `trips?x=1`, `//host/x`): a URL meant to be resolved against a base. */
function isRelativeUrl(given: string): boolean {
  return !/^[a-z][a-z\d+.-]*:/i.test(given.trim());
}

function absoluteHint(url: string): string {
  if (url.startsWith('//')) return `http:${url}`;
  return `http://<service>${url.startsWith('/') ? url : `/${url}`}`;
}

/** True for any meshwork error, from any copy of the package; with `code`, only for that code. */
export function isMeshworkError(err: unknown, code?: ErrorCode): err is MeshworkError {
  if (typeof err !== 'object' || err === null || (err as Record<symbol, unknown>)[BRAND] !== true)
    return false;
  return code === undefined || (err as MeshworkError).code === code;
}

/** A request's `timeout` (all attempts) or `perTryTimeout` (the last attempt) ran out. */
export class MeshTimeoutError extends MeshworkError {
  readonly service: string;
  readonly timeoutMs: number;
  readonly scope: 'request' | 'per-try' | 'deadline';
  constructor(service: string, timeoutMs: number, scope: 'request' | 'per-try' | 'deadline') {
    const what =
      scope === 'request'
        ? 'timeout, all attempts'
        : scope === 'per-try'
          ? 'perTryTimeout'
          : 'the deadline inherited from the inbound request (x-meshwork-deadline)';
    super(ErrorCodes.TIMEOUT, `request to service "${service}" timed out after ${timeoutMs} ms (${what})`);
    this.name = 'MeshTimeoutError';
    this.service = service;
    this.timeoutMs = timeoutMs;
    this.scope = scope;
  }
}

/** A connection-pool limit overflowed; rejected before anything was sent (Envoy's "UO"). */
export class OverflowError extends MeshworkError {
  readonly service: string;
  readonly limit: string;
  constructor(service: string, limit: string, value: number) {
    super(ErrorCodes.OVERFLOW, `service "${service}": ${limit} (${value}) reached, request rejected`);
    this.name = 'OverflowError';
    this.service = service;
    this.limit = limit;
  }
}

/** The service's circuit breaker is open: the request failed fast and was not sent. */
export class CircuitOpenError extends MeshworkError {
  readonly service: string;
  constructor(service: string) {
    super(ErrorCodes.CIRCUIT_OPEN, `service "${service}": circuit breaker is open, request not sent`);
    this.name = 'CircuitOpenError';
    this.service = service;
  }
}

/**
 * An outbound path to a service with routes cannot be normalized (invalid percent-encoding,
 * `%00`, an escaped slash under the default `pathNormalization`, ...): refused before routing.
 */
export class InvalidPathError extends MeshworkError {
  readonly service: string;
  readonly path: string;
  constructor(service: string, path: string, reason: string) {
    super(
      ErrorCodes.INVALID_PATH,
      `request to service "${service}" not sent: path ${JSON.stringify(path)} cannot be normalized (${reason})`,
    );
    this.name = 'InvalidPathError';
    this.service = service;
    this.path = path;
  }
}

/** The caller aborted the request (its AbortSignal or the dispatch controller). */
export class MeshAbortedError extends MeshworkError {
  constructor(service: string, options?: ErrorOptions) {
    super(ErrorCodes.ABORTED, `request to service "${service}" was aborted by the caller`, options);
    this.name = 'MeshAbortedError';
  }
}

/** meshwork was loaded on a Node.js older than it supports (thrown when the package is imported). */
export class NodeVersionError extends MeshworkError {
  readonly found: string;
  readonly required: string;
  constructor(found: string, required: string) {
    super(
      ErrorCodes.NODE_VERSION,
      `meshwork needs Node.js ${required}, but it was loaded on Node.js ${found} (${process.execPath}): ` +
        'upgrade Node.js (22 or 24 LTS) to use it',
    );
    this.name = 'NodeVersionError';
    this.found = found;
    this.required = required;
  }
}

/**
 * A config asks for a feature whose optional package is not installed (etcd3, consul, opossum
 * are optional peer dependencies, loaded when a service needs them).
 */
export class MissingDependencyError extends MeshworkError {
  readonly dependency: string;
  constructor(dependency: string, feature: string, options?: ErrorOptions) {
    super(
      ErrorCodes.MISSING_DEPENDENCY,
      `${feature} needs the optional package "${dependency}", which is not installed: run \`npm install ${dependency}\``,
      options,
    );
    this.name = 'MissingDependencyError';
    this.dependency = dependency;
  }
}

/**
 * A request failed with an error that carries no `code` of its own (an error thrown by the
 * caller's request body stream, or an unusual transport error): `cause` is that error.
 */
export class RequestFailedError extends MeshworkError {
  constructor(cause: unknown) {
    const message = cause instanceof Error ? cause.message : String(cause);
    super(ErrorCodes.REQUEST_FAILED, `request failed: ${message}`, { cause });
    this.name = 'RequestFailedError';
  }
}

/**
 * A request `mesh.agent` cannot carry: a protocol upgrade (`Upgrade:` header, WebSocket) or a
 * `CONNECT` tunnel. Refused before anything is sent.
 */
export class UnsupportedRequestError extends MeshworkError {
  constructor(what: string, hint: string) {
    super(ErrorCodes.UNSUPPORTED_REQUEST, `${what} is not supported through mesh.agent: ${hint}`);
    this.name = 'UnsupportedRequestError';
  }
}

/**
 * Gives a request's final error the one shape every failure of `mesh.fetch`, `mesh.dispatcher`
 * and `mesh.agent` has (docs/errors.md): a `code`, the number of `attempts` that reached an
 * endpoint, and the last `endpoint`. A meshwork error is annotated; an error of the transport is
 * annotated too (it keeps its own code: `ECONNREFUSED`, `UND_ERR_SOCKET`...), so it stays the same
 * object; an error with no code (or one that cannot be annotated) is wrapped in a
 * RequestFailedError whose `cause` it is.
 */
export function requestFailure(err: unknown, attempts: number, endpoint: string | undefined): Error {
  if (isMeshworkError(err)) {
    if (!Object.isFrozen(err)) {
      err.attempts = attempts;
      err.endpoint = endpoint;
    }
    return err;
  }
  if (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { code?: unknown }).code === 'string' &&
    Object.isExtensible(err)
  ) {
    try {
      Object.defineProperty(err, 'attempts', {
        value: attempts,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      Object.defineProperty(err, 'endpoint', {
        value: endpoint,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      return err as Error;
    } catch {
      // A property that cannot be redefined: wrapped below.
    }
  }
  const wrapped = new RequestFailedError(err);
  wrapped.attempts = attempts;
  wrapped.endpoint = endpoint;
  return wrapped;
}
