// One Travelz agency service in its own process: `node service.ts <name> <version> [downstream...]`.
// It answers JSON about itself, and when it has downstream services it calls them through its
// own meshwork mesh (config from MESHWORK_CONFIG), as a real service would.
import { createServer } from 'node:http';
import { createMesh } from '../../src/index.ts';

const [name = 'svc', version = 'v1', ...downstream] = process.argv.slice(2);
const mesh = downstream.length > 0 ? createMesh() : undefined;
let served = 0;

const server = createServer(async (req, res) => {
  served++;
  const calls: Record<string, unknown> = {};
  if (mesh) {
    await Promise.all(
      downstream.map(async (d) => {
        const r = await mesh.fetch(`http://${d}${req.url ?? '/'}`);
        calls[d] = await r.json();
      }),
    );
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ service: name, version, host: req.headers.host, served, calls }));
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ ready: true, name, version, port })}\n`);
});

process.on('SIGTERM', async () => {
  server.close();
  await mesh?.close();
  process.exit(0);
});
