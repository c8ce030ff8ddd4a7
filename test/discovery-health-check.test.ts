import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthCheckingSink } from '../src/discovery/health-check.ts';
import { staticSpec } from '../src/discovery/static.ts';
import { RecordingSink } from './support/recording-sink.ts';

describe('active health checks (a filter on the discovery stream)', () => {
  const servers: Server[] = [];
  let hc: HealthCheckingSink | undefined;

  afterEach(async () => {
    await hc?.close();
    hc = undefined;
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  async function backend(): Promise<{ address: string; status: { code: number }; hits: { n: number } }> {
    const status = { code: 200 };
    const hits = { n: 0 };
    const server = createServer((req, res) => {
      if (req.url === '/healthz') hits.n++;
      res.writeHead(req.url === '/healthz' ? status.code : 404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, status, hits };
  }

  it('marks an endpoint unhealthy after unhealthyThreshold failures and healthy after healthyThreshold', async () => {
    const a = await backend();
    const b = await backend();
    const sink = new RecordingSink();
    hc = new HealthCheckingSink(sink, {
      interval: 50,
      timeout: 500,
      unhealthyThreshold: 2,
      healthyThreshold: 2,
    });
    hc.apply([
      { type: 'insert', endpoint: staticSpec(a.address) },
      { type: 'insert', endpoint: staticSpec(b.address) },
    ]);
    hc.ready();
    expect(sink.readyCount).toBe(1);
    expect(sink.endpoints.size).toBe(2);
    a.status.code = 503;
    await sink.waitFor(() => sink.unhealthy.has(a.address), 5_000, 'a unhealthy');
    // Marked, not removed: it keeps its place (pool, load estimate) in the set.
    expect(sink.endpoints.has(a.address)).toBe(true);
    expect(sink.removes()).toBe(0);
    expect(hc.health().find((h) => h.address === a.address)).toMatchObject({
      healthy: false,
      lastError: 'non-2xx status',
    });
    expect(sink.unhealthy.has(b.address)).toBe(false);
    a.status.code = 200;
    await sink.waitFor(() => !sink.unhealthy.has(a.address), 5_000, 'a healthy again');
    expect(sink.removes()).toBe(0);
  });

  it('a closed port and a hung check (timeout) count as failures; provider removes stop probing', async () => {
    const hung = createServer(() => {}); // never answers
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    servers.push(hung);
    const hungAddr = `127.0.0.1:${(hung.address() as AddressInfo).port}`;
    const sink = new RecordingSink();
    hc = new HealthCheckingSink(sink, { interval: 50, timeout: 100, unhealthyThreshold: 1 });
    hc.apply([
      { type: 'insert', endpoint: staticSpec('127.0.0.1:1') },
      { type: 'insert', endpoint: staticSpec(hungAddr) },
    ]);
    await sink.waitFor(() => sink.unhealthy.size === 2, 5_000, 'both unhealthy');
    expect(hc.health().find((h) => h.address === hungAddr)?.lastError).toMatch(/timed out/);
    hc.apply([{ type: 'remove', address: hungAddr }]);
    expect(hc.health().map((h) => h.address)).toEqual(['127.0.0.1:1']);
    // The provider's remove of an unhealthy endpoint is passed on: it leaves the set.
    expect(sink.removes()).toBe(1);
    expect(sink.addresses()).toEqual(['127.0.0.1:1']);
  });

  it('passes error and skipped through', () => {
    const sink = new RecordingSink();
    hc = new HealthCheckingSink(sink, {}, { probe: async () => true });
    hc.error(new Error('x'));
    hc.skipped('bad', {});
    expect(sink.errors).toHaveLength(1);
    expect(sink.skips).toHaveLength(1);
  });
});
