import type { ServerResponse } from 'node:http';
import { afterEach } from 'vitest';
import { createMesh, type Mesh } from '../../src/mesh.ts';
import { startServer, type TestServer } from './servers.ts';

/**
 * Per-test servers and meshes that are closed after each test (in reverse order), for test
 * files that build a one-service mesh (`svc`) over a few real servers.
 */
export function useFixture(): {
  server: (handle?: Parameters<typeof startServer>[0]) => Promise<TestServer>;
  mesh: (cfg: Record<string, unknown>, addresses: string[], extra?: Record<string, unknown>) => Mesh;
} {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return {
    async server(handle) {
      const s = await startServer(handle);
      cleanups.push(() => s.close());
      return s;
    },
    mesh(cfg, addresses, extra = {}) {
      const m = createMesh({
        env: {},
        services: { svc: { discovery: { static: addresses }, ...cfg } },
        ...extra,
      } as never);
      cleanups.push(() => m.close());
      return m;
    },
  };
}

/** A handler that always answers 503. */
export const always503 = (_req: unknown, res: ServerResponse): void => {
  res.statusCode = 503;
  res.end('down');
};
