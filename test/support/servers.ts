import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestServer {
  server: Server;
  address: string;
  port: number;
  /** Requests seen, in order. */
  hits: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
  close(): Promise<void>;
}

export type Handle = (req: IncomingMessage, res: ServerResponse, body: string) => void | Promise<void>;

/** A real node:http server on 127.0.0.1, port 0, that records every request it sees. */
export async function startServer(
  handle: Handle = (_req, res) => {
    res.end('ok');
  },
): Promise<TestServer> {
  const hits: TestServer['hits'] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    hits.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
    try {
      await handle(req, res, body);
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Replies with the server's own name, so tests can count where traffic went. */
export function named(name: string): Handle {
  return (_req, res) => {
    res.setHeader('x-served-by', name);
    res.end(name);
  };
}

/** A free port with nothing listening on it (connections are refused). */
export async function refusedAddress(): Promise<string> {
  const s = await startServer();
  const address = s.address;
  await s.close();
  return address;
}
