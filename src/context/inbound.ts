import type { IncomingMessage, ServerResponse } from 'node:http';
import { inboundOtel, runInOtel } from './otel.ts';
import type { ContextRuntime, InboundMode, InboundResult, Refusal } from './runtime.ts';

export type NextFn = (err?: unknown) => void;
export type InboundMiddleware = (req: IncomingMessage, res: ServerResponse, next: NextFn) => void;

/** The body of a refusal: Envoy's RBAC wording for a 403, the reason for a 400. */
export function refusalBody(denied: Refusal): string {
  return denied.status === 403
    ? `RBAC: access denied: ${denied.reason}\n`
    : `Bad Request: ${denied.reason}\n`;
}

/** Writes the answer of a refused request: 403 (authorization) or 400 (malformed target). */
export function refuse(res: ServerResponse, denied: Refusal): void {
  const body = refusalBody(denied);
  res.statusCode = denied.status;
  // A malformed target says nothing good about the rest of the connection.
  if (denied.status === 400) res.setHeader('connection', 'close');
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/**
 * Runs `then` with what `runtime.enter(req, mode)` found: at once, or once the request's signed
 * token is verified (enter() is async only then). `fail` gets an error of enter() itself, never
 * one thrown by `then`.
 */
export function whenEntered(
  runtime: ContextRuntime,
  req: IncomingMessage,
  then: (r: InboundResult) => void,
  fail: (err: unknown) => void,
  mode?: InboundMode,
): void {
  let r: InboundResult | Promise<InboundResult>;
  try {
    r = runtime.enter(req, mode);
  } catch (err) {
    fail(err);
    return;
  }
  if (r instanceof Promise)
    r.then((entered) => {
      // Thrown here, after a wait, nothing up the stack would catch it (an unhandled rejection
      // ends the process): it goes to `fail`, as a synchronous throw goes to the framework.
      try {
        then(entered);
      } catch (err) {
        fail(err);
      }
    }, fail);
  else then(r);
}

/**
 * Connect-style middleware (node:http, Express, Connect): starts (or reuses) the request's
 * SERVER span, normalizes the request target (and rewrites `req.url` to it), enforces
 * `authorization`, then runs the rest of the request inside its context.
 */
export function inboundMiddleware(runtime: ContextRuntime): InboundMiddleware {
  return (req, res, next) => {
    const otel = inboundOtel(req, res);
    whenEntered(
      runtime,
      req,
      (r) => {
        if (r.denied) {
          refuse(res, r.denied);
          return;
        }
        runtime.run(r.ctx, () => runInOtel(otel, () => next()));
      },
      next,
    );
  };
}
