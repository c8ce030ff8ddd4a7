// The bench upstream (its own process): one plain HTTP and one mTLS HTTPS listener on loopback.
// `/close` answers with `connection: close`, so every request needs a new connection.
// argv: certPath keyPath caPath. Prints {"http":port,"https":port} once listening.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';

const [certPath, keyPath, caPath] = process.argv.slice(2) as [string, string, string];
const body = Buffer.from('ok');
const handle = (req: IncomingMessage, res: ServerResponse) => {
  if (req.url === '/close') res.setHeader('connection', 'close');
  res.setHeader('content-length', body.length);
  res.end(body);
};
const http = createHttp({ keepAliveTimeout: 30_000 }, handle);
const https = createHttps(
  {
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    ca: readFileSync(caPath),
    requestCert: true,
    rejectUnauthorized: true,
    keepAliveTimeout: 30_000,
  },
  handle,
);
http.listen(0, '127.0.0.1');
https.listen(0, '127.0.0.1');
await Promise.all([once(http, 'listening'), once(https, 'listening')]);
console.log(
  JSON.stringify({
    http: (http.address() as AddressInfo).port,
    https: (https.address() as AddressInfo).port,
  }),
);
process.on('SIGTERM', () => process.exit(0));
