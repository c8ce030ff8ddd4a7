// A bench upstream in its own process: `node upstream.ts [delayMs]`. Answers every request
// with a small body (after an optional delay) and prints {"port": N} when it listens.
// GET /__bench/count answers {"count": N}, the requests served so far (itself not counted).
import { createServer } from 'node:http';

const delayMs = Number(process.argv[2] ?? 0);
const body = Buffer.from('{"ok":true,"service":"upstream"}');
let count = 0;
const server = createServer((req, res) => {
  if (req.url === '/__bench/count') {
    const c = Buffer.from(JSON.stringify({ count }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': c.length });
    res.end(c);
    return;
  }
  count++;
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
