import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { useFixture } from './support/fixture.ts';

const { server, mesh } = useFixture();
const rawServers: Server[] = [];
afterEach(async () => {
  for (const s of rawServers.splice(0)) {
    s.close();
  }
});

/** A TCP server that answers every request with `reply` and closes the connection. */
async function rawServer(reply: string): Promise<string> {
  const s = createServer((sock) => {
    sock.once('data', () => sock.end(reply));
    sock.on('error', () => {});
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  rawServers.push(s);
  return `127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe('a body that breaks after the headers', () => {
  it('counts as a failure: the truncating replica is ejected and callers stop failing', async () => {
    const good = await Promise.all([server(), server(), server()]);
    // 200 with a Content-Length of 100, then 10 bytes and the connection closes.
    const truncating = await rawServer('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
    const m = mesh(
      {
        trafficPolicy: {
          loadBalancer: { simple: 'ROUND_ROBIN' },
          outlierDetection: { consecutive5xxErrors: 3, maxEjectionPercent: 50, baseEjectionTime: '30s' },
        },
      },
      [...good.map((g) => g.address), truncating],
    );
    const outcomes: boolean[] = [];
    for (let i = 0; i < 80; i++) {
      try {
        const res = await m.fetch('http://svc/x');
        await res.text();
        outcomes.push(true);
      } catch {
        outcomes.push(false);
      }
    }
    const ep = m.snapshot().services.svc?.endpoints.find((e) => e.address === truncating);
    expect(ep?.ejected).toBe(true);
    // Three failures trip it; after that, every request succeeds.
    expect(outcomes.filter((ok) => !ok).length).toBeLessThanOrEqual(3);
    expect(outcomes.slice(-40).every(Boolean)).toBe(true);
  });
});

describe('an upstream that speaks invalid HTTP', () => {
  it('fails with a parser error that counts as a reset, so retryOn "reset" retries it', async () => {
    const good = await server();
    const garbage = await rawServer('HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\nhello');
    const m = mesh(
      {
        trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { enabled: false } },
        retries: { attempts: 2, retryOn: 'reset' },
      },
      [garbage, good.address],
    );
    for (let i = 0; i < 6; i++) {
      const res = await m.fetch('http://svc/x');
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('ok');
    }
    expect(good.hits.length).toBe(6);
  });
});
