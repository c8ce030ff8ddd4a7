import type { IncomingMessage, ServerResponse } from 'node:http';
import { runInOtel } from './otel.ts';
import type { ContextRuntime, InboundResult } from './runtime.ts';

export type NextFn = (err?: unknown) => void;
export type InboundMiddleware = (req: IncomingMessage, res: ServerResponse, next: NextFn) => void;

/** Writes the 403 of a refused request (Envoy's RBAC wording, with the reason). */
export function refuse(res: ServerResponse, denied: NonNullable<InboundResult['denied']>): void {
  const body = `RBAC: access denied: ${denied.reason}\n`;
  res.statusCode = denied.status;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/**
 * Runs `then` with what `runtime.enter(req)` found: at once, or once the request's signed token is
 * verified (enter() is async only then). `fail` gets an error of enter() itself, never one thrown
 * by `then`.
 */
export function whenEntered(
  runtime: ContextRuntime,
  req: IncomingMessage,
  then: (r: InboundResult) => void,
  fail: (err: unknown) => void,
): void {
  let r: InboundResult | Promise<InboundResult>;
  try {
    r = runtime.enter(req);
  } catch (err) {
    fail(err);
    return;
  }
  if (r instanceof Promise) r.then(then, fail);
  else then(r);
}

/**
 * Connect-style middleware (node:http, Express, Connect, @fastify/middie): enforces
 * `authorization`, then runs the rest of the request inside its context.
 */
export function inboundMiddleware(runtime: ContextRuntime): InboundMiddleware {
  return (req, res, next) => {
    whenEntered(
      runtime,
      req,
      (r) => {
        if (r.denied) {
          refuse(res, r.denied);
          return;
        }
        runtime.run(r.ctx, () => runInOtel(r.otel, () => next()));
      },
      next,
    );
  };
}
