import { getEventListeners } from 'node:events';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { isMeshworkError } from '../src/errors.ts';
import { always503, useFixture } from './support/fixture.ts';
import { refusedAddress } from './support/servers.ts';

const { server, mesh } = useFixture();

describe('outlier detection', () => {
  it('ejects the always-503 endpoint of 5 (defaults), shows it in the snapshot', async () => {
    const bad = await server(always503);
    const good = await Promise.all([1, 2, 3, 4].map(() => server()));
    const m = mesh({}, [bad.address, ...good.map((g) => g.address)]);
    const badEjected = () =>
      m.snapshot().services.svc?.endpoints.find((e) => e.address === bad.address)?.ejected === true;
    // Traffic as a service sees it: several requests in flight (with strictly sequential
    // requests, peak-EWMA may keep avoiding the 503 endpoint if its first answer was slow).
    for (let i = 0; i < 400 && !badEjected(); i++) {
      const statuses = await Promise.all(
        Array.from({ length: 8 }, async () => {
          const res = await m.fetch('http://svc/x');
          await res.text();
          return res.status;
        }),
      );
      expect(statuses.every((st) => st === 200)).toBe(true);
    }
    const hitsAtEjection = bad.hits.length;
    for (let i = 0; i < 50; i++) {
      const res = await m.fetch('http://svc/x');
      expect(res.status).toBe(200);
      await res.text();
    }
    const snap = m.snapshot().services.svc;
    const ep = snap?.endpoints.find((e) => e.address === bad.address);
    expect(ep?.ejected).toBe(true);
    expect(snap?.endpoints.filter((e) => e.ejected).length).toBe(1);
    expect(snap?.outlierDetection?.ejectionsTotal).toBe(1);
    // 5 consecutive 503s eject it (a few more may have been in flight already), and then no more.
    expect(hitsAtEjection).toBeGreaterThanOrEqual(5);
    expect(hitsAtEjection).toBeLessThanOrEqual(5 + 7);
    expect(bad.hits.length).toBe(hitsAtEjection);
  });

  it('counts attempts, 5xx answers and errors per endpoint in the snapshot', async () => {
    const bad = await server(always503);
    const good = await server();
    const refused = await refusedAddress();
    // No outlier detection, so every endpoint keeps getting picked; retries move on.
    const m = mesh({ trafficPolicy: { outlierDetection: { enabled: false } } }, [
      bad.address,
      good.address,
      refused,
    ]);
    for (let i = 0; i < 30; i++) {
      const res = await m.fetch('http://svc/x');
      expect(res.status).toBe(200);
      await res.text();
    }
    const eps = m.snapshot().services.svc?.endpoints ?? [];
    const of = (a: string) => eps.find((e) => e.address === a);
    expect(of(good.address)).toMatchObject({ attempts: good.hits.length, responses5xx: 0, errors: 0 });
    expect(of(bad.address)).toMatchObject({
      attempts: bad.hits.length,
      responses5xx: bad.hits.length,
      errors: 0,
    });
    expect(of(refused)?.errors).toBe(of(refused)?.attempts);
    expect(of(refused)?.responses5xx).toBe(0);
    // Every send is counted once: 30 answered by the good one, the rest retried away.
    expect(good.hits.length).toBe(30);
    const total = eps.reduce((n, e) => n + e.attempts, 0);
    expect(total).toBe(30 + bad.hits.length + (of(refused)?.errors ?? 0));
  });

  it('an ejected endpoint comes back after baseEjectionTime; the last one is never ejected', async () => {
    let failing = true;
    const flappy = await server((_req, res) => {
      res.statusCode = failing ? 503 : 200;
      res.end();
    });
    const good = await server();
    const m = mesh(
      {
        retries: { attempts: 0 },
        trafficPolicy: {
          outlierDetection: { consecutive5xxErrors: 2, baseEjectionTime: '150ms', maxEjectionPercent: 100 },
        },
      },
      [flappy.address, good.address],
    );
    const ejected = () =>
      m.snapshot().services.svc?.endpoints.find((e) => e.address === flappy.address)?.ejected;
    for (let i = 0; i < 200 && !ejected(); i++) {
      await Promise.all(Array.from({ length: 4 }, async () => (await m.fetch('http://svc/x')).text()));
    }
    expect(ejected()).toBe(true);
    const hits = flappy.hits.length;
    for (let i = 0; i < 5; i++) expect((await m.fetch('http://svc/x')).status).toBe(200);
    expect(flappy.hits.length).toBe(hits);
    failing = false;
    await new Promise((r) => setTimeout(r, 200));
    expect(ejected()).toBe(false);

    const alone = mesh(
      { retries: { attempts: 0 }, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1 } } },
      [flappy.address],
    );
    failing = true;
    for (let i = 0; i < 3; i++) expect((await alone.fetch('http://svc/x')).status).toBe(503);
    expect(alone.snapshot().services.svc?.endpoints[0]?.ejected).toBe(false);
  });

  it('a refusing endpoint counts as local-origin failures and is ejected', async () => {
    const dead = await refusedAddress();
    const good = await server();
    const m = mesh(
      {
        trafficPolicy: {
          // RANDOM so the dead endpoint is certainly tried: peak-EWMA would rightly keep
          // choosing the one it has seen answer fast, and never learn the other is dead.
          loadBalancer: { simple: 'RANDOM' },
          outlierDetection: { consecutiveLocalOriginFailures: 1, maxEjectionPercent: 50 },
        },
      },
      [dead, good.address],
    );
    for (let i = 0; i < 100; i++) expect((await m.fetch('http://svc/x')).status).toBe(200);
    const eps = m.snapshot().services.svc?.endpoints ?? [];
    expect(eps.find((e) => e.address === dead)?.ejected).toBe(true);
  });
});

describe('circuit breaker', () => {
  it('opens when the whole service fails, fails fast, half-open probe closes it', async () => {
    let failing = true;
    const s = await server((_req, res) => {
      res.statusCode = failing ? 500 : 200;
      res.end();
    });
    const m = mesh(
      {
        retries: { attempts: 0 },
        trafficPolicy: {
          outlierDetection: { enabled: false },
          circuitBreaker: { volumeThreshold: 5, resetTimeout: '200ms', errorThresholdPercentage: 50 },
        },
      },
      [s.address],
    );
    for (let i = 0; i < 5; i++) expect((await m.fetch('http://svc/x')).status).toBe(500);
    const err = await m.fetch('http://svc/x').catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_CIRCUIT_OPEN')).toBe(true);
    expect(s.hits.length).toBe(5);
    expect(m.snapshot().services.svc?.circuitBreaker?.state).toBe('open');
    failing = false;
    await new Promise((r) => setTimeout(r, 300));
    expect(m.snapshot().services.svc?.circuitBreaker?.state).toBe('half_open');
    expect((await m.fetch('http://svc/x')).status).toBe(200);
    expect(m.snapshot().services.svc?.circuitBreaker?.state).toBe('closed');
  });

  it('gives the fallback answer while open', async () => {
    const s = await server((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const m = mesh(
      {
        retries: { attempts: 0 },
        trafficPolicy: { circuitBreaker: { volumeThreshold: 2 }, outlierDetection: { enabled: false } },
      },
      [s.address],
      {
        fallbacks: {
          svc: () => ({ status: 200, body: 'cached', headers: { 'content-type': 'text/plain' } }),
        },
      },
    );
    await m.fetch('http://svc/x');
    await m.fetch('http://svc/x');
    const res = await m.fetch('http://svc/x');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-meshwork-fallback')).toBe('circuit-open');
    expect(await res.text()).toBe('cached');
  });
});

describe('connection pool limits', () => {
  it('http2MaxRequests overflow is rejected fast with MESHWORK_ERR_OVERFLOW, and not retried', async () => {
    const release: (() => void)[] = [];
    const s = await server((_req, res) => {
      release.push(() => res.end('ok'));
    });
    const m = mesh({ trafficPolicy: { connectionPool: { http: { http2MaxRequests: 2 } } } }, [s.address]);
    const a = m.fetch('http://svc/x');
    const b = m.fetch('http://svc/x');
    while (s.hits.length < 2) await new Promise((r) => setTimeout(r, 5));
    const err = await m.fetch('http://svc/x').catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_OVERFLOW')).toBe(true);
    expect(m.snapshot().services.svc?.connectionPool?.overflows).toBe(1);
    for (const r of release) r();
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
  });

  it('http1MaxPendingRequests bounds requests queued beyond maxConnections', async () => {
    const release: (() => void)[] = [];
    const s = await server((_req, res) => {
      release.push(() => res.end('ok'));
    });
    const m = mesh(
      {
        trafficPolicy: {
          connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } },
        },
      },
      [s.address],
    );
    const a = m.fetch('http://svc/x');
    const b = m.fetch('http://svc/x');
    const err = await m.fetch('http://svc/x').catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_OVERFLOW')).toBe(true);
    while (release.length < 1) await new Promise((r) => setTimeout(r, 5));
    release.shift()?.();
    while (release.length < 1) await new Promise((r) => setTimeout(r, 5));
    release.shift()?.();
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
  });
});

describe('abort listeners', () => {
  it('removes its listener from the caller signal when the request ends', async () => {
    const s = await server();
    const m = mesh({}, [s.address]);
    const ac = new AbortController();
    const res = await request('http://svc/x', { dispatcher: m.dispatcher, signal: ac.signal });
    await res.body.text();
    await new Promise((r) => setImmediate(r));
    expect(getEventListeners(ac.signal, 'abort').length).toBe(0);
  });
});

describe('config validation', () => {
  it('names the field path and bad value', () => {
    expect(() => mesh({ retries: { retryOn: '5xx,nope' } }, ['127.0.0.1:1'])).toThrow(
      /services\.svc\.retries\.retryOn.*nope/,
    );
    expect(() =>
      mesh({ trafficPolicy: { outlierDetection: { maxEjectionPercent: 200 } } }, ['127.0.0.1:1']),
    ).toThrow(/outlierDetection\.maxEjectionPercent/);
    expect(() => mesh({ timeout: 'soon' }, ['127.0.0.1:1'])).toThrow(/services\.svc\.timeout/);
  });
});
