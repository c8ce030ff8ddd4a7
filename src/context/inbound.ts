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
 * Connect-style middleware (node:http, Express, Connect, @fastify/middie): enforces
 * `authorization`, then runs the rest of the request inside its context.
 */
export function inboundMiddleware(runtime: ContextRuntime): InboundMiddleware {
  return (req, res, next) => {
    const r = runtime.enter(req);
    if (r.denied) {
      refuse(res, r.denied);
      return;
    }
    runtime.run(r.ctx, () => runInOtel(r.otel, () => next()));
  };
}
