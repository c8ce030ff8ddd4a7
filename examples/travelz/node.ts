// What every Travelz process shares: a mesh (config from MESHWORK_CONFIG, written by run.ts),
// an HTTP server behind mesh.inbound() (so the gateway context and the trace ride along),
// counters from meshwork's diagnostics channels, and GET /snapshot for the demo driver.
import dc from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import {
  CHANNELS,
  createMesh,
  type EjectionMessage,
  type Mesh,
  meshHandler,
  type RequestMessage,
  type RetryMessage,
} from '../../src/index.ts';

export interface CallStats {
  requests: number;
  ok: number;
  retries: number;
  ejections: number;
}

export interface NodeInfo {
  name: string;
  version: string;
  port: number;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, mesh: Mesh) => Promise<void> | void;

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

/**
 * `tls`: the service is served over mTLS with its mesh identity (client certificates required, as
 * Istio's STRICT), on a port of its own (`tlsPort`); `port` stays the driver's plain window
 * (/snapshot, /admin/).
 */
export function runNode(name: string, version: string, handler: Handler, opts: { tls?: boolean } = {}): void {
  const mesh = createMesh();
  const calls: Record<string, CallStats> = {};
  const stat = (svc: string) => {
    calls[svc] ??= { requests: 0, ok: 0, retries: 0, ejections: 0 };
    return calls[svc];
  };
  dc.subscribe(CHANNELS.requestEnd, (m) => {
    const msg = m as RequestMessage;
    const s = stat(msg.service);
    s.requests++;
    if (msg.statusCode !== undefined && msg.statusCode < 500) s.ok++;
  });
  dc.subscribe(CHANNELS.requestError, (m) => {
    stat((m as RequestMessage).service).requests++;
  });
  dc.subscribe(CHANNELS.retry, (m) => {
    stat((m as RetryMessage).service).retries++;
  });
  dc.subscribe(CHANNELS.endpointEjected, (m) => {
    stat((m as EjectionMessage).service).ejections++;
  });
  let served = 0;
  const statuses: Record<string, number> = {};
  let port = 0;

  const app = meshHandler(mesh, async (req, res) => {
    served++;
    res.on('finish', () => {
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
    });
    await handler(req, res, mesh);
  });
  const admin = mesh.adminHandler();
  const server = createServer((req, res) => {
    // The driver's window into this process; not part of the scenario's traffic.
    if (req.url === '/snapshot') {
      json(res, 200, { name, version, port, served, statuses, calls, mesh: mesh.snapshot() });
      return;
    }
    // meshwork's admin page (an operator's view; mount it on an internal port in production).
    if (req.url?.startsWith('/admin/')) {
      req.url = req.url.slice('/admin'.length);
      admin(req, res);
      return;
    }
    app(req, res);
  });
  const secure = opts.tls ? createTlsServer(mesh.serverTlsOptions(), app) : undefined;
  if (secure) mesh.watchServerTls(secure);
  server.listen(0, '127.0.0.1', () => {
    port = (server.address() as { port: number }).port;
    if (!secure) {
      process.stdout.write(`${JSON.stringify({ ready: true, name, version, port })}\n`);
      return;
    }
    secure.listen(0, '127.0.0.1', () => {
      const tlsPort = (secure.address() as { port: number }).port;
      process.stdout.write(`${JSON.stringify({ ready: true, name, version, port, tlsPort })}\n`);
    });
  });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    server.closeAllConnections();
    server.close();
    secure?.closeAllConnections();
    secure?.close();
    await mesh.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // run.ts holds our stdin open: when it goes away (even killed), we go too.
  process.stdin.on('close', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}
