import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Starts a node:http (or https) server on 127.0.0.1, port 0; returns its base URL and a closer. */
export async function listen(
  server: Server | import('node:https').Server,
  scheme: 'http' | 'https' = 'http',
): Promise<{ url: string; close: () => Promise<void> }> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
  return createServer(handler);
}

/** Reads a JSON body from an undici/fetch response-like object. */
export async function json(res: { text(): Promise<string> }): Promise<any> {
  return JSON.parse(await res.text());
}
