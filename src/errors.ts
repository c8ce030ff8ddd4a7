/**
 * Typed errors. Every meshwork error carries a stable `code` (`MESHWORK_ERR_*`) and a brand
 * (a registered symbol), so `isMeshworkError(err)` still works when two copies of the package
 * are loaded (where `instanceof` would fail).
 */

const BRAND = Symbol.for('meshwork.error');

export const ErrorCodes = {
  CONFIG: 'MESHWORK_ERR_CONFIG',
  UNKNOWN_SERVICE: 'MESHWORK_ERR_UNKNOWN_SERVICE',
  NO_ENDPOINTS: 'MESHWORK_ERR_NO_ENDPOINTS',
  CLOSED: 'MESHWORK_ERR_CLOSED',
  TIMEOUT: 'MESHWORK_ERR_TIMEOUT',
  OVERFLOW: 'MESHWORK_ERR_OVERFLOW',
  CIRCUIT_OPEN: 'MESHWORK_ERR_CIRCUIT_OPEN',
  BUDGET_EXHAUSTED: 'MESHWORK_ERR_BUDGET_EXHAUSTED',
  FAULT_ABORT: 'MESHWORK_ERR_FAULT_ABORT',
  TLS_IDENTITY: 'MESHWORK_ERR_TLS_IDENTITY',
  DISCOVERY: 'MESHWORK_ERR_DISCOVERY',
  ISTIO_UNSUPPORTED: 'MESHWORK_ERR_ISTIO_UNSUPPORTED',
  ABORTED: 'MESHWORK_ERR_ABORTED',
  NODE_VERSION: 'MESHWORK_ERR_NODE_VERSION',
  MISSING_DEPENDENCY: 'MESHWORK_ERR_MISSING_DEPENDENCY',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class MeshworkError extends Error {
  readonly code: ErrorCode;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = 'MeshworkError';
  }
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

/** The server's certificate does not carry any identity the client expected (issue 7). */
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
