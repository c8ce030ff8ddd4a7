import { describe, expect, it } from 'vitest';
import { isMeshworkError } from '../src/errors.ts';
import type { Mesh } from '../src/mesh.ts';
import { useFixture } from './support/fixture.ts';

const { server, mesh } = useFixture();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server that never answers /hang and answers everything else at once. */
function hangOrAnswer() {
  return (req: { url?: string }, res: { end(b: string): void }) => {
    if (req.url?.startsWith('/hang')) return new Promise<void>(() => {});
    res.end('fast');
  };
}

async function settle(m: Mesh, ms = 2_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (m.snapshot().services.svc?.inflight === 0) return;
    await sleep(10);
  }
}

describe('per-try timeouts against a hanging upstream', () => {
  const cfg = {
    trafficPolicy: {
      connectionPool: { tcp: { maxConnections: 2 }, http: { http2MaxRequests: 20 } },
      outlierDetection: { enabled: false },
    },
    retries: { attempts: 0, perTryTimeout: '50ms' },
  };

  it('never sends an attempt after its caller was told it timed out (no ghost POST)', async () => {
    const s = await server(hangOrAnswer());
    const m = mesh(cfg, [s.address]);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => m.fetch('http://svc/hang', { method: 'POST', body: `p${i}` })),
    );
    expect(results.every((r) => r.status === 'rejected' && isMeshworkError(r.reason.cause ?? r.reason))).toBe(
      true,
    );
    const seenAtTimeout = s.hits.length;
    await sleep(300);
    // Two connections: at most two POSTs were on the wire when the timeouts fired; none after.
    expect(s.hits.length).toBe(seenAtTimeout);
    expect(seenAtTimeout).toBeLessThanOrEqual(2);
  });

  it('every counter returns to zero and the service keeps serving after bursts of timeouts', async () => {
    const s = await server(hangOrAnswer());
    const m = mesh(cfg, [s.address]);
    for (let burst = 0; burst < 3; burst++) {
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => m.fetch('http://svc/hang')));
      expect(results.every((r) => r.status === 'rejected')).toBe(true);
      await settle(m);
      const svc = m.snapshot().services.svc;
      expect(svc?.inflight).toBe(0);
      expect(svc?.connectionPool?.active).toBe(0);
    }
    const res = await m.fetch('http://svc/fast');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('fast');
  });
});
