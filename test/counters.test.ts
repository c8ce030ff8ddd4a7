import diagnostics from 'node:diagnostics_channel';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { isMeshworkError } from '../src/errors.ts';
import { createMesh, type Mesh } from '../src/mesh.ts';
import { snapshotProblems } from '../src/telemetry/snapshot.ts';
import { useFixture } from './support/fixture.ts';
import { startServer } from './support/servers.ts';

const { server, mesh } = useFixture();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server that never answers /hang and answers everything else at once. */
function hangOrAnswer() {
  return (req: { url?: string }, res: { end(b: string): void }) => {
    if (req.url?.startsWith('/hang')) return new Promise<void>(() => {});
    res.end('fast');
  };
}

/** Waits (bounded) until the mesh has nothing in flight, then returns what is still wrong. */
async function settle(m: Mesh, ms = 5_000): Promise<string[]> {
  const end = Date.now() + ms;
  let problems = snapshotProblems(m.snapshot(), { idle: true });
  while (problems.length > 0 && Date.now() < end) {
    await sleep(10);
    problems = snapshotProblems(m.snapshot(), { idle: true });
  }
  return problems;
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
    // The order of events in this process: each POST's headers going on the wire (undici's
    // sendHeaders channel) and each caller's rejection. A ghost is a send after its rejection.
    let seq = 0;
    const sentAt = new Map<string, number>();
    const rejectedAt = new Map<string, number>();
    const onSend = (msg: unknown) => {
      const call = /x-call: (\d+)/i.exec(String((msg as { headers?: unknown }).headers))?.[1];
      if (call !== undefined) sentAt.set(call, ++seq);
    };
    diagnostics.subscribe('undici:client:sendHeaders', onSend);
    try {
      // Dispatched in one tick (undici.request dispatches synchronously), so the per-try timers
      // start together and fire in one batch, before any connection frees up.
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          request('http://svc/hang', {
            dispatcher: m.dispatcher,
            method: 'POST',
            body: `p${i}`,
            headers: { 'x-call': String(i) },
          }).catch((err: unknown) => {
            rejectedAt.set(String(i), ++seq);
            throw err;
          }),
        ),
      );
      expect(results.every((r) => r.status === 'rejected' && isMeshworkError(r.reason))).toBe(true);
      await sleep(300);
    } finally {
      diagnostics.unsubscribe('undici:client:sendHeaders', onSend);
    }
    // On a quiet machine two POSTs are sent (two connections) and eight never; on a slow one a
    // timer may fire a little later, so a third may go in time. None goes after its rejection.
    const ghosts = [...sentAt].filter(([call, at]) => at > (rejectedAt.get(call) ?? 0));
    expect(ghosts).toEqual([]);
    expect(s.hits.length).toBe(sentAt.size);
  });

  it('every counter returns to zero and the service keeps serving after bursts of timeouts', async () => {
    const s = await server(hangOrAnswer());
    const m = mesh(cfg, [s.address]);
    for (let burst = 0; burst < 3; burst++) {
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => m.fetch('http://svc/hang')));
      expect(results.every((r) => r.status === 'rejected')).toBe(true);
      expect(await settle(m)).toEqual([]);
      const svc = m.snapshot().services.svc;
      expect(svc?.inflight).toBe(0);
      expect(svc?.connectionPool?.active).toBe(0);
    }
    // Never MESHWORK_ERR_OVERFLOW; a busy machine may need a new connection within 50 ms, so a
    // per-try timeout is tolerated on the way to one answer.
    let body = '';
    for (let i = 0; i < 10 && body === ''; i++) {
      try {
        body = await (await m.fetch('http://svc/fast')).text();
      } catch (err) {
        expect((err as { cause?: { code?: string } }).cause?.code).toBe('MESHWORK_ERR_TIMEOUT');
      }
    }
    expect(body).toBe('fast');
  });
});

describe('every counter returns to zero', () => {
  it('after callers abort requests in flight and still queued', async () => {
    const s = await server(hangOrAnswer());
    const m = mesh({ trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 } } } }, [s.address]);
    const ac = new AbortController();
    const calls = Array.from({ length: 5 }, () => m.fetch('http://svc/hang', { signal: ac.signal }));
    await sleep(50);
    ac.abort();
    const results = await Promise.allSettled(calls);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(await settle(m)).toEqual([]);
    expect(s.hits.length).toBe(1); // the four queued ones were never sent
  });

  it('after hedges lose to a faster attempt', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      // Every other answer is slow: the hedge wins those, and the slow attempt is cancelled.
      if (n++ % 2 === 0) setTimeout(() => res.end('slow'), 200);
      else res.end('fast');
    });
    const m = mesh(
      {
        retries: { attempts: 2, hedge: { delay: '20ms', maxExtraLoad: 1 } },
        trafficPolicy: { outlierDetection: { enabled: false } },
      },
      [s.address],
    );
    for (let i = 0; i < 6; i++) await (await m.fetch('http://svc/x')).text();
    expect(await settle(m)).toEqual([]);
  });

  it('after per-try timeouts with the breaker: every request let through is judged', async () => {
    const s = await server(hangOrAnswer());
    const m = mesh(
      {
        retries: { attempts: 1, perTryTimeout: '30ms' },
        trafficPolicy: { circuitBreaker: { volumeThreshold: 1000 }, outlierDetection: { enabled: false } },
      },
      [s.address],
    );
    await Promise.allSettled(Array.from({ length: 6 }, () => m.fetch('http://svc/hang')));
    // A busy machine may need longer than 30 ms for a new connection: settled either way.
    await m.fetch('http://svc/fast').then(
      (res) => res.text(),
      () => '',
    );
    expect(await settle(m)).toEqual([]);
    expect(m.snapshot().services.svc?.circuitBreaker?.pending).toBe(0);
  });

  it('after mirrored copies finish', async () => {
    const main = await server();
    const shadow = await server();
    const m = createMesh({
      env: {},
      services: {
        svc: {
          discovery: { static: [main.address] },
          http: [{ route: [{ destination: {} }], mirror: { host: 'shadow' } }],
        },
        shadow: { discovery: { static: [shadow.address] } },
      },
    });
    try {
      for (let i = 0; i < 5; i++) await (await m.fetch('http://svc/x')).text();
      expect(await settle(m)).toEqual([]);
      expect(m.snapshot().mirrors?.sent).toBe(5);
    } finally {
      await m.close();
    }
  });

  it('after the mesh is closed with requests in flight', async () => {
    const s = await startServer(hangOrAnswer());
    const m = createMesh({
      env: {},
      closeTimeout: '50ms',
      services: { svc: { discovery: { static: [s.address] } } },
    });
    const settled = Promise.allSettled(Array.from({ length: 4 }, () => m.fetch('http://svc/hang')));
    await sleep(30);
    await m.close();
    const results = await settled;
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(await settle(m)).toEqual([]);
    await s.close();
  });
});

describe('snapshotProblems', () => {
  it('names counters that disagree', () => {
    const problems = snapshotProblems(
      {
        zone: undefined,
        closed: false,
        takenAt: '',
        inbound: {} as never,
        services: {
          a: {
            endpoints: [{ address: '1.2.3.4:80', inflight: 2 } as never],
            loadBalancer: 'x',
            inflight: 2,
            discovery: {} as never,
            connectionPool: { active: 3, overflows: 0 },
            requests: { active: 1 },
          },
        },
        mirrors: { inFlight: 0, max: 16, sent: 0, dropped: 0 },
      },
      { idle: true },
    );
    expect(problems).toEqual([
      'services.a endpoint 1.2.3.4:80: inflight 2 while idle',
      'services.a.connectionPool.active 3 != inflight 2',
      'services.a.inflight 2 while idle',
      'services.a.requests.active 1 while idle',
    ]);
  });
});
