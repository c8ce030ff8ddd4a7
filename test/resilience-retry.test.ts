import diagnostics from 'node:diagnostics_channel';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { isMeshworkError } from '../src/errors.ts';
import { DEADLINE_HEADER } from '../src/retry/deadline.ts';
import { always503, useFixture } from './support/fixture.ts';
import { refusedAddress } from './support/servers.ts';

const { server, mesh } = useFixture();

describe('retries', () => {
  it('retries a GET answered 503 on another endpoint (defaults)', async () => {
    const bad = await server(always503);
    const good = await server();
    const m = mesh({ trafficPolicy: { outlierDetection: { enabled: false } } }, [bad.address, good.address]);
    let n = 0;
    for (; n < 10 || (bad.hits.length === 0 && n < 1_000); n++) {
      const res = await m.fetch('http://svc/x');
      expect(res.status).toBe(200);
      await res.text();
    }
    expect(bad.hits.length).toBeGreaterThan(0);
    expect(good.hits.length).toBe(n);
  });

  it('reports each retry with its reason and the endpoint it moves away from', async () => {
    const bad = await server(always503);
    const good = await server();
    const m = mesh(
      { trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { enabled: false } } },
      [bad.address, good.address],
    );
    const seen: { reason: string; endpoint?: string }[] = [];
    const onRetry = (msg: unknown) => seen.push(msg as { reason: string; endpoint?: string });
    diagnostics.subscribe('meshwork:retry', onRetry);
    try {
      for (let i = 0; i < 4; i++) await (await m.fetch('http://svc/x')).text();
    } finally {
      diagnostics.unsubscribe('meshwork:retry', onRetry);
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => r.reason === '503' && r.endpoint === bad.address)).toBe(true);
  });

  it('the retried answer, with its headers, reaches fetch', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      res.setHeader('x-try', String(n));
      res.statusCode = n++ === 0 ? 503 : 201;
      res.end(`try ${n}`);
    });
    const m = mesh({}, [s.address]);
    const res = await m.fetch('http://svc/x');
    expect(res.status).toBe(201);
    expect(res.headers.get('x-try')).toBe('1');
    expect(await res.text()).toBe('try 2');
  });

  it('one POST answered 503 → exactly one upstream hit, 503 delivered as is', async () => {
    const bad = await server(always503);
    const m = mesh({}, [bad.address]);
    const res = await m.fetch('http://svc/x', { method: 'POST', body: 'payload' });
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('down');
    expect(bad.hits.length).toBe(1);
  });

  it('POST to a refused port is retried to another endpoint', async () => {
    const dead = await refusedAddress();
    const good = await server();
    const m = mesh({ trafficPolicy: { outlierDetection: { enabled: false } } }, [dead, good.address]);
    for (let i = 0; i < 6; i++) {
      const res = await m.fetch('http://svc/x', { method: 'POST', body: `n${i}` });
      expect(res.status).toBe(200);
      await res.text();
    }
    expect(good.hits.map((h) => h.body)).toEqual(['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
  });

  it('POST with Idempotency-Key is retried on 503 and the body is replayed', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      res.statusCode = n++ === 0 ? 503 : 200;
      res.end();
    });
    const m = mesh({}, [s.address]);
    const res = await m.fetch('http://svc/x', {
      method: 'POST',
      body: 'hello',
      headers: { 'idempotency-key': 'k1' },
    });
    expect(res.status).toBe(200);
    expect(s.hits.map((h) => h.body)).toEqual(['hello', 'hello']);
  });

  it('retryNonIdempotent retries a POST; a reset mid-response is retried under retryOn reset', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      if (n++ === 0) {
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial');
        setTimeout(() => res.socket?.destroy(), 5);
        return;
      }
      res.end('ok');
    });
    const m = mesh({ retries: { attempts: 2, retryOn: '5xx,reset', retryNonIdempotent: true } }, [s.address]);
    // A reset after headers reached the caller cannot be retried (the answer was delivered).
    const first = await m.fetch('http://svc/x', { method: 'POST', body: 'a' });
    await expect(first.text()).rejects.toThrow();
    // A reset before headers is retried.
    n = 0;
    s.server.removeAllListeners('request');
    const hits: number[] = [];
    s.server.on('request', (req, res) => {
      hits.push(1);
      if (hits.length === 1) {
        req.socket.destroy();
        return;
      }
      res.end('ok');
    });
    const res = await m.fetch('http://svc/x', { method: 'POST', body: 'b' });
    expect(res.status).toBe(200);
    expect(hits.length).toBe(2);
  });

  it('retries gRPC unavailable (grpc-status 14) under the defaults', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      if (n++ === 0) res.setHeader('grpc-status', '14');
      res.end();
    });
    const m = mesh({}, [s.address]);
    const res = await m.fetch('http://svc/x');
    expect(res.headers.get('grpc-status')).toBeNull();
    expect(s.hits.length).toBe(2);
  });

  it('a non-retryable status is delivered after one send; retriable-4xx retries 409', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      res.statusCode = n++ === 0 ? 409 : 200;
      res.end();
    });
    const m = mesh({ retries: { retryOn: ['retriable-4xx', 502] } }, [s.address]);
    const res = await m.fetch('http://svc/x');
    expect(res.status).toBe(200);
    expect(s.hits.length).toBe(2);
  });

  it('honours Retry-After within the bound', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      if (n++ === 0) {
        res.writeHead(503, { 'retry-after': '0' });
        res.end();
        return;
      }
      res.end('ok');
    });
    const m = mesh({}, [s.address]);
    const res = await m.fetch('http://svc/x');
    expect(res.status).toBe(200);
  });

  it('a Retry-After beyond retryAfterMax ends retrying: the 503 is delivered', async () => {
    const s = await server((_req, res) => {
      res.writeHead(503, { 'retry-after': '120' });
      res.end();
    });
    const m = mesh({}, [s.address]);
    const res = await m.fetch('http://svc/x');
    expect(res.status).toBe(503);
    expect(s.hits.length).toBe(1);
  });

  it('a stream body larger than 64 KiB is never replayed', async () => {
    const s = await server(always503);
    const m = mesh({ retries: { retryOn: '5xx' } }, [s.address]);
    const big = 'x'.repeat(70 * 1024);
    const res = await request('http://svc/x', {
      dispatcher: m.dispatcher,
      method: 'PUT',
      body: (async function* () {
        yield big.slice(0, 40_000);
        yield big.slice(40_000);
      })() as never,
    });
    expect(res.statusCode).toBe(503);
    await res.body.text();
    expect(s.hits.length).toBe(1);
    expect(s.hits[0]?.body.length).toBe(big.length);
  });

  it('a small stream body is buffered and replayed', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      res.statusCode = n++ === 0 ? 503 : 200;
      res.end();
    });
    const m = mesh({}, [s.address]);
    const res = await m.fetch('http://svc/x', {
      method: 'PUT',
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('small'));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(200);
    expect(s.hits.map((h) => h.body)).toEqual(['small', 'small']);
  });
});

describe('timeouts and abort', () => {
  it('perTryTimeout retries a hanging endpoint; timeout bounds the whole request', async () => {
    const hang = await server(() => {});
    const good = await server();
    const m = mesh(
      {
        retries: { attempts: 2, perTryTimeout: '100ms', retryOn: 'gateway-error' },
        timeout: '2s',
        trafficPolicy: { outlierDetection: { enabled: false } },
      },
      [hang.address, good.address],
    );
    for (let i = 0; i < 4; i++) {
      const res = await m.fetch('http://svc/x');
      expect(res.status).toBe(200);
      await res.text();
    }
    const m2 = mesh({ retries: { attempts: 5, perTryTimeout: '100ms', retryOn: '5xx' }, timeout: '250ms' }, [
      hang.address,
    ]);
    const started = performance.now();
    const err = await m2.fetch('http://svc/x').catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('a POST that timed out per try is not retried (it may have been processed)', async () => {
    const hang = await server(() => {});
    const m = mesh({ retries: { attempts: 2, perTryTimeout: '100ms', retryOn: '5xx' } }, [hang.address]);
    const err = await m.fetch('http://svc/x', { method: 'POST', body: 'once' }).catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
    expect(hang.hits.length).toBe(1);
  });

  it('timeout also covers the response body', async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': '10' });
      res.write('12345');
    });
    const m = mesh({ timeout: '200ms' }, [s.address]);
    const res = await request('http://svc/x', { dispatcher: m.dispatcher });
    expect(res.statusCode).toBe(200);
    const err = await res.body.text().catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
  });

  it('sends the deadline header with the time left', async () => {
    const s = await server();
    const m = mesh({ timeout: '5s', retries: { perTryTimeout: '1s' } }, [s.address]);
    await (await m.fetch('http://svc/x')).text();
    const v = Number(s.hits[0]?.headers[DEADLINE_HEADER]);
    expect(v).toBeGreaterThan(900);
    expect(v).toBeLessThanOrEqual(1000);
  });

  it('the caller aborts mid-backoff: rejected at once, no further attempt', async () => {
    const s = await server((_req, res) => {
      res.writeHead(503, { 'retry-after': '1' });
      res.end();
    });
    const m = mesh({}, [s.address]);
    const ac = new AbortController();
    const p = request('http://svc/x', { dispatcher: m.dispatcher, signal: ac.signal });
    await new Promise((r) => setTimeout(r, 200));
    expect(s.hits.length).toBe(1);
    ac.abort(new Error('caller gave up'));
    await expect(p).rejects.toThrow('caller gave up');
    await new Promise((r) => setTimeout(r, 1_100));
    expect(s.hits.length).toBe(1);
  });

  it('fetch abort while the upstream hangs', async () => {
    const hang = await server(() => {});
    const m = mesh({}, [hang.address]);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await expect(m.fetch('http://svc/x', { signal: ac.signal })).rejects.toThrow();
  });
});

describe('budget and hedging', () => {
  it('a total outage with the budget: attempts per request ≤ 1.3 after warm-up', async () => {
    const s = await server(always503);
    const m = mesh(
      {
        retries: { attempts: 2, retryOn: '5xx' },
        retryBudget: { minRetriesPerSecond: 1 },
        trafficPolicy: { outlierDetection: { enabled: false } },
      },
      [s.address],
    );
    const N = 200;
    for (let i = 0; i < N; i++) await (await m.fetch('http://svc/x')).text();
    expect(s.hits.length / N).toBeLessThanOrEqual(1.3);
    const snap = m.snapshot().services.svc?.retryBudget;
    expect(snap?.exhausted).toBe(true);
    expect(snap?.exhaustedCount).toBeGreaterThan(0);
  });

  it('hedging: a backup request wins over a slow attempt; the slow one runs on, bounded, then is aborted', async () => {
    let n = 0;
    let abortedSlow = 0;
    const s = await server((_req, res) => {
      if (n++ === 0) {
        const t = setTimeout(() => res.end('slow'), 3_000);
        res.on('close', () => {
          clearTimeout(t);
          if (!res.writableEnded) abortedSlow++;
        });
        return;
      }
      res.end('fast');
    });
    const m = mesh({ retries: { hedge: { delay: '50ms', maxExtraLoad: 1 } } }, [s.address]);
    const res = await m.fetch('http://svc/x');
    expect(await res.text()).toBe('fast');
    expect(s.hits.length).toBe(2);
    // The loser runs on (its true latency feeds the balancer) for at most 1 s, then is aborted.
    await new Promise((r) => setTimeout(r, 100));
    expect(abortedSlow).toBe(0);
    await new Promise((r) => setTimeout(r, 1_300));
    expect(abortedSlow).toBe(1);
  });

  it('hedging: a lost attempt that answers within the bound is read to its end, and its time is learned', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      if (n++ === 0) setTimeout(() => res.end('slow'), 150);
      else res.end('fast');
    });
    const m = mesh(
      {
        retries: { hedge: { delay: '20ms', maxExtraLoad: 1 } },
        trafficPolicy: { outlierDetection: { enabled: false } },
      },
      [s.address],
    );
    expect(await (await m.fetch('http://svc/x')).text()).toBe('fast');
    await new Promise((r) => setTimeout(r, 300));
    const ep = m.snapshot().services.svc?.endpoints[0];
    expect(ep?.errors).toBe(0);
    expect(ep?.ewmaMs).toBeGreaterThanOrEqual(140);
    expect(m.snapshot().services.svc?.inflight).toBe(0);
  });

  it('hedges stay within maxExtraLoad', async () => {
    const s = await server((_req, res) => {
      setTimeout(() => res.end('slow'), 40);
    });
    const m = mesh({ retries: { hedge: { delay: '5ms', maxExtraLoad: 0.1 } } }, [s.address]);
    const N = 30;
    for (let i = 0; i < N; i++) await (await m.fetch('http://svc/x')).text();
    // 1 free hedge per 10 s plus 10% of requests.
    expect(s.hits.length).toBeLessThanOrEqual(N + 1 + 0.1 * N);
    expect(s.hits.length).toBeGreaterThan(N);
  });

  it('hedging never duplicates a POST', async () => {
    const s = await server((_req, res) => {
      setTimeout(() => res.end('done'), 150);
    });
    const m = mesh({ retries: { hedge: { delay: '20ms', maxExtraLoad: 1 } } }, [s.address]);
    expect(await (await m.fetch('http://svc/x', { method: 'POST', body: 'x' })).text()).toBe('done');
    expect(s.hits.length).toBe(1);
  });
});
