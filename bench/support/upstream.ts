// A bench upstream in its own process: `node upstream.ts [delayMs]`. Answers every request
// with a small body (after an optional delay) and prints {"port": N} when it listens.
import { createServer } from 'node:http';

const delayMs = Number(process.argv[2] ?? 0);
const body = Buffer.from('{"ok":true,"service":"upstream"}');
const server = createServer((_req, res) => {
  const reply = () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  };
  if (delayMs > 0) setTimeout(reply, delayMs);
  else reply();
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
