import dc from 'node:diagnostics_channel';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProviderTracker } from '../src/discovery/tracker.ts';
import { CHANNELS, createMesh, isMeshworkError, type Logger, type Mesh } from '../src/index.ts';
import type { DispatchHandler } from '../src/pipeline.ts';
import { startServer, type TestServer } from './support/servers.ts';

const SECRET = 'pa55-w0rd-SECRET';

let server: TestServer;
let meshes: Mesh[] = [];
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());
afterEach(async () => {
  await Promise.all(meshes.map((m) => m.close()));
  meshes = [];
  server.hits.length = 0;
});

function recordingLogger(): Logger & { lines: unknown[] } {
  const lines: unknown[] = [];
  const log = (obj: object, msg?: string) => lines.push([obj, msg]);
  return { lines, debug: log, info: log, warn: log, error: log };
}

function mesh(config: Record<string, unknown> = {}): Mesh {
  const m = createMesh({
    env: {},
    services: { reviews: { discovery: { static: [server.address] } } },
    ...config,
  } as never);
  meshes.push(m);
  return m;
}

async function errorOf(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Everything an error shows: message, stack, own properties, and the same for its causes. */
function everything(err: unknown, depth = 0): string {
  if (typeof err !== 'object' || err === null || depth > 5) return String(err);
  const e = err as Error & Record<string, unknown>;
  const own = Object.getOwnPropertyNames(e)
    .filter((k) => k !== 'cause')
    .map((k) => `${k}=${String(e[k])}`);
  return [String(e.message), String(e.stack), ...own, everything(e.cause, depth + 1)].join('\n');
}

/** Dispatches directly (undici.request would drop the userinfo of the origin itself). */
function dispatchError(m: Mesh, origin: string | URL): Promise<Error> {
  return new Promise((resolve, reject) => {
    const handler: DispatchHandler = {
      onRequestStart() {},
      onResponseError: (_c, err) => resolve(err),
      onResponseStart: () => reject(new Error('unexpected response')),
    };
    m.dispatcher.dispatch({ origin, path: '/', method: 'GET' }, handler);
  });
}

describe('credentials in URLs', () => {
  it('mesh.fetch with userinfo and an invalid host: MESHWORK_ERR_INVALID_URL, the password shown nowhere', async () => {
    for (const unknownServices of ['reject', 'passthrough'] as const) {
      const m = mesh({ unknownServices });
      const err = await errorOf(m.fetch(`http://user:${SECRET}@bad host/`));
      expect(isMeshworkError(err, 'MESHWORK_ERR_INVALID_URL')).toBe(true);
      expect(err.message).toContain('http://REDACTED:REDACTED@bad host/');
      expect(everything(err)).not.toContain(SECRET);
      expect(everything(err)).not.toContain('user:');
    }
  });

  it('mesh.fetch with userinfo to a service is refused, nothing sent, as fetch refuses it', async () => {
    const m = mesh();
    for (const url of [`http://user:${SECRET}@reviews/x`, new URL(`http://user:${SECRET}@reviews/x`)]) {
      const err = await errorOf(m.fetch(url));
      expect(isMeshworkError(err, 'MESHWORK_ERR_INVALID_URL')).toBe(true);
      expect(err.name).toBe('InvalidUrlError');
      expect(err.url).toBe('http://REDACTED:REDACTED@reviews/x');
      expect(err.message).toContain('credentials');
      expect(err.message).toContain('Authorization');
      expect(everything(err)).not.toContain(SECRET);
    }
    // Passthrough to a host outside the mesh: refused the same way (fetch would throw the URL, password included).
    const p = mesh({ unknownServices: 'passthrough' });
    const err = await errorOf(p.fetch(`http://user:${SECRET}@127.0.0.1:1/`));
    expect(err.code).toBe('MESHWORK_ERR_INVALID_URL');
    expect(everything(err)).not.toContain(SECRET);
    expect(server.hits).toHaveLength(0);
  });

  it('the dispatcher refuses an origin with userinfo (string or URL) and redacts invalid origins', async () => {
    const m = mesh({ unknownServices: 'passthrough' });
    for (const origin of [
      `http://user:${SECRET}@reviews`,
      new URL(`http://user:${SECRET}@reviews`),
      `http://user:${SECRET}@elsewhere.invalid`,
      `http://user:${SECRET}@bad host`,
      `http://:${SECRET}@reviews`,
    ]) {
      const err = await dispatchError(m, origin);
      expect(isMeshworkError(err, 'MESHWORK_ERR_INVALID_URL'), String(origin)).toBe(true);
      expect(err.message).toContain('REDACTED:REDACTED@');
      expect(everything(err)).not.toContain(SECRET);
    }
    expect(server.hits).toHaveLength(0);
  });

  it('undici.request drops the userinfo before the mesh sees it: sent without credentials, never as Basic auth', async () => {
    const m = mesh();
    const r = await request(`http://user:${SECRET}@reviews/`, { dispatcher: m.dispatcher });
    await r.body.text();
    expect(server.hits[0]?.headers.authorization).toBeUndefined();
    expect(JSON.stringify(server.hits[0]?.headers)).not.toContain(SECRET);
  });

  it('nothing reaches logs or diagnostics channels', async () => {
    const logger = recordingLogger();
    const seen: unknown[] = [];
    const sub = (msg: unknown) => seen.push(msg);
    for (const c of Object.values(CHANNELS)) dc.subscribe(c, sub);
    try {
      const m = mesh({ logger, unknownServices: 'passthrough' });
      await errorOf(m.fetch(`http://user:${SECRET}@reviews/`));
      await errorOf(m.fetch(`http://user:${SECRET}@bad host/`));
      await dispatchError(m, `http://user:${SECRET}@bad host`);
      await dispatchError(m, `http://user:${SECRET}@reviews`);
      await (await m.fetch('http://reviews/')).text();
      const all = JSON.stringify([logger.lines, seen.map((s) => everything(s))]);
      expect(all).not.toContain(SECRET);
      expect(JSON.stringify(m.snapshot())).not.toContain(SECRET);
    } finally {
      for (const c of Object.values(CHANNELS)) dc.unsubscribe(c, sub);
    }
  });
});

describe('credentials in discovery addresses', () => {
  it('etcd hosts with userinfo are refused at createMesh (use username/password), the password not shown', () => {
    const bad = (discovery: Record<string, unknown>, env: Record<string, string> = {}) => {
      try {
        createMesh({ env, services: { a: { discovery } } } as never).close();
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected createMesh to throw');
    };
    for (const err of [
      bad({ etcd: { hosts: [`http://root:${SECRET}@etcd:2379`] } }),
      bad({ etcd: {} }, { ETCDCTL_ENDPOINTS: `http://127.0.0.1:2379,https://root:${SECRET}@etcd:2379` }),
      bad({ consul: {} }, { CONSUL_HTTP_ADDR: `http://user:${SECRET}@consul:8500` }),
      bad({ consul: {} }, { CONSUL_HTTP_ADDR: `user:${SECRET}@consul:8500` }),
    ]) {
      expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG'), err.message).toBe(true);
      expect(err.message).toMatch(/credentials/);
      expect(everything(err)).not.toContain(SECRET);
    }
  });

  it('a registry error quoting a URL with userinfo is redacted in the status, the sink, logs and the channel', () => {
    const tracker = new ProviderTracker('test');
    const errors: Error[] = [];
    tracker.attach({ apply() {}, ready() {}, error: (e) => errors.push(e), skipped() {} });
    tracker.error(new Error(`connect to http://u:${SECRET}@registry:8500/v1 failed`));
    expect(tracker.status().lastError).toBe('connect to http://REDACTED:REDACTED@registry:8500/v1 failed');
    expect(errors[0]?.message).toBe('connect to http://REDACTED:REDACTED@registry:8500/v1 failed');
  });
});

describe('config errors', () => {
  it('do not echo secret fields nor URL credentials', () => {
    const errs: string[] = [];
    for (const config of [
      { context: { headers: [], trust: { signature: { hmacSecret: 'short-secret' } } } },
      { services: { a: { discovery: { etcd: { password: 'x', bogus: `http://u:${SECRET}@h` } } } } },
      // A number no stack trace line or column will contain by chance.
      { services: { a: { discovery: { consul: { token: 7_913_064_285 } } } } },
    ]) {
      try {
        createMesh({ env: {}, ...config } as never).close();
        errs.push('no error');
      } catch (err) {
        errs.push(everything(err));
      }
    }
    expect(errs[0]).toContain('hmacSecret');
    expect(errs[0]).not.toContain('short-secret');
    expect(errs[1]).toContain('bogus');
    expect(errs[1]).not.toContain(SECRET);
    expect(errs[2]).toContain('token');
    expect(errs[2]).not.toContain('7913064285');
  });
});
