/**
 * Server adapters for mesh.inbound(). Express and Connect take `mesh.inbound()` directly
 * (`app.use(mesh.inbound())`); plain node:http and Fastify use these helpers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context } from '@opentelemetry/api';
import { refusalBody, refuse, whenEntered } from './inbound.ts';
import { inboundOtel, runInOtel } from './otel.ts';
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
  return (req, res) => {
    const otel = inboundOtel(req, res);
    whenEntered(
      rt,
      req,
      (r) => {
        if (r.denied) return refuse(res, r.denied);
        rt.run(r.ctx, () =>
          runInOtel(otel, () => {
            const p = handler(req, res);
            if (p && typeof p.catch === 'function') p.catch((err: unknown) => fail(res, err));
          }),
        );
      },
      (err) => fail(res, err),
    );
  };
}

const kInbound = Symbol('meshwork.inbound');

/** The parts of a Fastify request and reply this adapter uses (no dependency on fastify's types). */
interface FastifyRequestLike {
  readonly raw: IncomingMessage;
  [kInbound]?: { r: InboundResult; otel: Context | undefined };
}
interface FastifyReplyLike {
  readonly raw: ServerResponse;
  header(name: string, value: string): unknown;
  code(status: number): { type(contentType: string): { send(body: string): unknown } };
}

/** The parts of a Fastify instance this adapter uses. */
interface FastifyLike {
  addHook(
    name: 'onRequest' | 'preHandler',
    // biome-ignore lint/suspicious/noExplicitAny: Fastify's own hook types are generic over its request and reply; any keeps real instances assignable without a dependency on fastify
    hook: (request: any, reply: any, done: (err?: Error) => void) => void,
  ): unknown;
}

/**
 * For Fastify's `rewriteUrl` option: `Fastify({ rewriteUrl: meshRewriteUrl(mesh) })`. Fastify
 * then routes the normalized target, the one authorization judges. A target that cannot be
 * normalized is left as it is; meshFastify's hook answers it with 400.
 */
export function meshRewriteUrl(mesh: HasContext): (req: IncomingMessage) => string {
  const rt = mesh.contextRuntime;
  return (req) => {
    const url = req.url ?? '/';
    const r = rt.normalize(url);
    return typeof r === 'string' ? r : url;
  };
}

/**
 * Installs mesh.inbound() on a Fastify instance (root or encapsulated), no @fastify/middie needed:
 * `meshFastify(fastify, mesh)`. `onRequest` enforces authorization and reads the context;
 * `preHandler` re-enters it, because body parsing runs on stream events outside the hook's
 * async context. Fastify has chosen the route before any hook runs, so a request target that
 * normalization would change is refused with 400 unless Fastify was created with
 * `rewriteUrl: meshRewriteUrl(mesh)`, which hands the router the normalized target.
 */
export function meshFastify(fastify: FastifyLike, mesh: HasContext): void {
  const rt = mesh.contextRuntime;
  fastify.addHook('onRequest', (request: FastifyRequestLike, reply: FastifyReplyLike, done) => {
    const otel = inboundOtel(request.raw, reply.raw);
    whenEntered(
      rt,
      request.raw,
      (r) => {
        if (r.denied) {
          if (r.denied.status === 400) reply.header('connection', 'close');
          reply.code(r.denied.status).type('text/plain; charset=utf-8').send(refusalBody(r.denied));
          return;
        }
        request[kInbound] = { r, otel };
        rt.run(r.ctx, () => runInOtel(otel, () => done()));
      },
      (err) => done(err as Error),
      'routed',
    );
  });
  fastify.addHook('preHandler', (request: FastifyRequestLike, _reply: unknown, done) => {
    const entered = request[kInbound];
    if (!entered) return done();
    rt.run(entered.r.ctx, () => runInOtel(entered.otel, () => done()));
  });
}
