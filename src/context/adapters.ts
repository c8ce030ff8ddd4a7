/**
 * Server adapters for mesh.inbound(). Express and Connect take `mesh.inbound()` directly
 * (`app.use(mesh.inbound())`); plain node:http and Fastify use these helpers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { refuse, whenEntered } from './inbound.ts';
import { runInOtel } from './otel.ts';
import type { ContextRuntime, InboundResult } from './runtime.ts';

interface HasContext {
  readonly contextRuntime: ContextRuntime;
}

/** Wraps a node:http request listener: `http.createServer(meshHandler(mesh, (req, res) => …))`. */
export function meshHandler(
  mesh: HasContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
): (req: IncomingMessage, res: ServerResponse) => void {
  const rt = mesh.contextRuntime;
  const fail = (res: ServerResponse, err: unknown) => {
    if (!res.headersSent) res.statusCode = 500;
    res.end(String((err as Error)?.message ?? err));
  };
  return (req, res) =>
    whenEntered(
      rt,
      req,
      (r) => {
        if (r.denied) return refuse(res, r.denied);
        rt.run(r.ctx, () =>
          runInOtel(r.otel, () => {
            const p = handler(req, res);
            if (p && typeof p.catch === 'function') p.catch((err: unknown) => fail(res, err));
          }),
        );
      },
      (err) => fail(res, err),
    );
}

/** The parts of a Fastify instance this adapter uses (no dependency on fastify's types). */
interface FastifyLike {
  addHook(
    name: 'onRequest' | 'preHandler',
    hook: (request: any, reply: any, done: (err?: Error) => void) => void,
  ): unknown;
}

const kInbound = Symbol('meshwork.inbound');

/**
 * Installs mesh.inbound() on a Fastify instance (root or encapsulated), no @fastify/middie needed:
 * `meshFastify(fastify, mesh)`. `onRequest` enforces authorization and reads the context;
 * `preHandler` re-enters it, because body parsing runs on stream events outside the hook's
 * async context.
 */
export function meshFastify(fastify: FastifyLike, mesh: HasContext): void {
  const rt = mesh.contextRuntime;
  fastify.addHook('onRequest', (request, reply, done) => {
    whenEntered(
      rt,
      request.raw,
      (r) => {
        if (r.denied) {
          reply.code(403).type('text/plain; charset=utf-8').send(`RBAC: access denied: ${r.denied.reason}\n`);
          return;
        }
        request[kInbound] = r;
        rt.run(r.ctx, () => runInOtel(r.otel, () => done()));
      },
      (err) => done(err as Error),
    );
  });
  fastify.addHook('preHandler', (request, _reply, done) => {
    const r: InboundResult | undefined = request[kInbound];
    if (!r) return done();
    rt.run(r.ctx, () => runInOtel(r.otel, () => done()));
  });
}
