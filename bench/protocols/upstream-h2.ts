// An HTTP/2 bench upstream in its own process: `node upstream-h2.ts [certPath keyPath]`.
// Without a certificate: h2c (cleartext HTTP/2 by prior knowledge only). With one: HTTP/2 over
// TLS only (ALPN h2). Answers every request with the same small body as bench/support/upstream.ts
// and prints {"port": N} when it listens.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

const [certPath, keyPath] = process.argv.slice(2);
const body = Buffer.from('{"ok":true,"service":"upstream"}');
const server =
  certPath && keyPath
    ? http2.createSecureServer({
        cert: readFileSync(certPath),
        key: readFileSync(keyPath),
        allowHTTP1: false,
      })
    : http2.createServer();
server.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.respond({ ':status': 200, 'content-type': 'application/json', 'content-length': body.length });
  stream.end(body);
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
process.on('SIGTERM', () => process.exit(0));
