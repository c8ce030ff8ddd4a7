// Errors are one shape: every failure of mesh.fetch and mesh.dispatcher carries a `code`, the
// number of `attempts` that reached an endpoint and the last `endpoint` (mesh.agent: test/agent.test.ts).
import { Readable } from 'node:stream';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { isMeshworkError } from '../src/index.ts';
import { always503, useFixture } from './support/fixture.ts';
import { refusedAddress } from './support/servers.ts';

const { server, mesh } = useFixture();

describe('one error shape', () => {
  it('a transport failure keeps its own code and gets attempts and the last endpoint (dispatcher)', async () => {
    const refused = await refusedAddress();
    const m = mesh({ retries: { attempts: 2, retryOn: 'connect-failure' } }, [refused]);
    const err = await request('http://svc/x', { dispatcher: m.dispatcher }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', attempts: 3, endpoint: refused });
    expect(isMeshworkError(err)).toBe(false);
  });

  it('mesh.fetch: fetch’s TypeError stays a TypeError, with its cause’s code, attempts and endpoint', async () => {
    const refused = await refusedAddress();
    const m = mesh({}, [refused]);
    const err = (await m.fetch('http://svc/x').catch((e: unknown) => e)) as TypeError & { cause: unknown };
    expect(err).toBeInstanceOf(TypeError);
    // The default retry policy (Istio's: 2 retries on connect-failure...): 3 attempts.
    expect(err).toMatchObject({ code: 'ECONNREFUSED', attempts: 3, endpoint: refused });
    expect(err.cause).toMatchObject({ code: 'ECONNREFUSED', attempts: 3, endpoint: refused });
  });

  it('a mesh failure after attempts (timeout) counts them; one before any (unknown, no endpoints, closed) has 0', async () => {
    const hang = await server(() => {});
    const m = mesh({ retries: { attempts: 1, perTryTimeout: '100ms', retryOn: 'reset' } }, [hang.address]);
    const timeout = await m.fetch('http://svc/x').catch((e: unknown) => e);
    expect(isMeshworkError(timeout, 'MESHWORK_ERR_TIMEOUT')).toBe(true);
    expect(timeout).toMatchObject({ attempts: 2, endpoint: hang.address });

    const unknown = await m.fetch('http://other/x').catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'MESHWORK_ERR_UNKNOWN_SERVICE', attempts: 0, endpoint: undefined });
    const viaDispatcher = await request('http://other/x', { dispatcher: m.dispatcher }).catch(
      (e: unknown) => e,
    );
    expect(viaDispatcher).toMatchObject({ code: 'MESHWORK_ERR_UNKNOWN_SERVICE', attempts: 0 });

    const empty = mesh({}, []);
    const none = await request('http://svc/x', { dispatcher: empty.dispatcher }).catch((e: unknown) => e);
    expect(none).toMatchObject({ code: 'MESHWORK_ERR_NO_ENDPOINTS', attempts: 0, endpoint: undefined });
    await empty.close();
    const closed = await request('http://svc/x', { dispatcher: empty.dispatcher }).catch((e: unknown) => e);
    expect(closed).toMatchObject({ code: 'MESHWORK_ERR_CLOSED', attempts: 0 });
  });

  it('a response that breaks after its headers fails with attempts 1 and its endpoint', async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('part');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const m = mesh({}, [s.address]);
    const res = await request('http://svc/x', { dispatcher: m.dispatcher });
    const err = await res.body.text().catch((e: unknown) => e);
    expect(err).toMatchObject({ attempts: 1, endpoint: s.address });
    expect(typeof (err as { code?: unknown }).code).toBe('string');
  });

  it('a 5xx is an answer, not an error; retried 5xx answers end in the last answer', async () => {
    const s = await server(always503);
    const m = mesh({ retries: { attempts: 1, retryOn: '5xx' } }, [s.address]);
    const res = await m.fetch('http://svc/x');
    expect(res.status).toBe(503);
    await res.text();
    expect(s.hits).toHaveLength(2);
  });

  it('an error with no code of its own (the caller’s body stream) is wrapped: MESHWORK_ERR_REQUEST_FAILED, cause kept', async () => {
    const s = await server();
    const m = mesh({}, [s.address]);
    const boom = new Error('disk read failed');
    const body = new Readable({
      read() {
        this.destroy(boom);
      },
    });
    const err = await request('http://svc/x', { dispatcher: m.dispatcher, method: 'POST', body }).catch(
      (e: unknown) => e,
    );
    expect(isMeshworkError(err, 'MESHWORK_ERR_REQUEST_FAILED')).toBe(true);
    expect(err).toMatchObject({ attempts: 0, endpoint: undefined, cause: boom });
    expect((err as Error).message).toContain('disk read failed');
  });

  it('the caller’s own abort reason comes back untouched', async () => {
    const hang = await server(() => {});
    const m = mesh({}, [hang.address]);
    const reason = Object.freeze(new Error('caller gave up'));
    const ac = new AbortController();
    setTimeout(() => ac.abort(reason), 50);
    const err = await m.fetch('http://svc/x', { signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBe(reason);
  });

  it('a host that is not a service (passthrough) fails in the same shape: one attempt, its address', async () => {
    const refused = await refusedAddress();
    const m = mesh({}, [], { unknownServices: 'passthrough' });
    const err = await request(`http://${refused}/x`, { dispatcher: m.dispatcher }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', attempts: 1, endpoint: refused });
  });

  it('a relative URL gets a message that says so', async () => {
    const m = mesh({}, []);
    for (const url of ['/trips?from=AMS', 'trips']) {
      const err = await m.fetch(url).catch((e: unknown) => e);
      expect(isMeshworkError(err, 'MESHWORK_ERR_INVALID_URL')).toBe(true);
      expect((err as Error).message).toMatch(/is a relative URL/);
      expect((err as Error).message).toContain('http://<service>/trips');
    }
    const err = await m.fetch('ftp://svc/x').catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/is not a valid http:\/\/ or https:\/\/ URL/);
  });
});
