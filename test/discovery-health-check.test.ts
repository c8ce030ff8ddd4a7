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

  it('removes an endpoint after unhealthyThreshold failures and re-adds it after healthyThreshold', async () => {
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
    await sink.waitFor(() => !sink.endpoints.has(a.address), 5_000, 'a removed');
    expect(hc.health().find((h) => h.address === a.address)).toMatchObject({
      healthy: false,
      lastError: 'non-2xx status',
    });
    expect(sink.endpoints.has(b.address)).toBe(true);
    a.status.code = 200;
    await sink.waitFor(() => sink.endpoints.has(a.address), 5_000, 'a back');
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
    await sink.waitFor(() => sink.endpoints.size === 0, 5_000, 'both removed');
    expect(hc.health().find((h) => h.address === hungAddr)?.lastError).toMatch(/timed out/);
    hc.apply([{ type: 'remove', address: hungAddr }]);
    expect(hc.health().map((h) => h.address)).toEqual(['127.0.0.1:1']);
    // The provider's remove of an endpoint already removed for health is not passed on twice.
    expect(sink.removes()).toBe(2);
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
