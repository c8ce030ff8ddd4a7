import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface TlsTestServer {
  server: Server;
  address: string;
  /** Principal (URI SAN) of each request's client certificate, or null. */
  peers: (string | null)[];
  close(): Promise<void>;
}

/** A real https server on 127.0.0.1, port 0, that answers with its name and records client identities. */
export async function startTlsServer(
  options: ServerOptions,
  handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok'),
): Promise<TlsTestServer> {
  const peers: (string | null)[] = [];
  const server = createServer(options, (req, res) => {
    const cert = (req.socket as TLSSocket).getPeerCertificate?.();
    const uri = cert?.subjectaltname?.split(/,\s*/).find((s) => s.startsWith('URI:'));
    peers.push(uri ? uri.slice(4) : null);
    handle(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    address: `127.0.0.1:${port}`,
    peers,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
