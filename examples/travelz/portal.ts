// The Travelz portal in its own process. Its outbound calls go through meshwork:
// config comes from MESHWORK_CONFIG (written by run.ts), the code only says `mesh.fetch`.
import { createServer } from 'node:http';
import { createMesh } from '../../src/index.ts';

const mesh = createMesh();

const server = createServer(async (req, res) => {
  res.setHeader('content-type', 'application/json');
  if (req.url === '/snapshot') {
    res.end(JSON.stringify(mesh.snapshot()));
    return;
  }
  try {
    const [travels, hotels] = await Promise.all([
      mesh.fetch('http://travels/trips/42').then((r) => r.json()),
      mesh.fetch('http://hotels/rooms?city=AMS').then((r) => r.json()),
    ]);
    res.end(JSON.stringify({ travels, hotels }));
  } catch (err) {
    res.statusCode = 502;
    res.end(JSON.stringify({ error: (err as Error).message, code: (err as { code?: string }).code }));
  }
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ ready: true, name: 'portal', port })}\n`);
});

process.on('SIGTERM', async () => {
  server.close();
  await mesh.close();
  process.exit(0);
});
