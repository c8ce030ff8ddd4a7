import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { request, stream, fetch as undiciFetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, isMeshworkError, type Mesh, MeshworkConfigError } from '../src/index.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

let a: TestServer;
let b: TestServer;
const meshes: Mesh[] = [];

function mesh(config: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh({ env: {}, ...config });
  meshes.push(m);
  return m;
}

beforeAll(async () => {
  a = await startServer(named('a'));
  b = await startServer(named('b'));
});
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
  a.hits.length = 0;
  b.hits.length = 0;
});
afterAll(async () => {
  await a.close();
  await b.close();
});

describe('addressing a service', () => {
  it('mesh.fetch sends http://<service>/path to an endpoint, with the original Host', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    const res = await m.fetch('http://travels/trips?from=AMS');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('a');
    expect(a.hits[0]?.url).toBe('/trips?from=AMS');
    expect(a.hits[0]?.headers.host).toBe('travels');
  });

  it('keeps an explicit port in the Host header, as Envoy forwards the authority', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    await (await m.fetch('http://travels:8080/')).text();
    expect(a.hits[0]?.headers.host).toBe('travels:8080');
  });

  it('spreads traffic over every endpoint', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address, b.address] } } } });
    await Promise.all(Array.from({ length: 40 }, async () => (await m.fetch('http://travels/')).text()));
    expect(a.hits.length).toBeGreaterThan(0);
    expect(b.hits.length).toBeGreaterThan(0);
    expect(a.hits.length + b.hits.length).toBe(40);
  });

  it('sends request bodies and methods unchanged', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    const res = await m.fetch('http://travels/book', {
      method: 'POST',
      body: JSON.stringify({ trip: 1 }),
      headers: { 'content-type': 'application/json', 'X-Custom': 'yes' },
    });
    await res.text();
    expect(a.hits[0]).toMatchObject({ method: 'POST', body: '{"trip":1}' });
    expect(a.hits[0]?.headers['x-custom']).toBe('yes');
  });
});

describe('mesh.dispatcher', () => {
  it('works with undici.request, undici.stream and undici.fetch', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    const r = await request('http://travels/r', { dispatcher: m.dispatcher });
    expect(r.statusCode).toBe(200);
    expect(await r.body.text()).toBe('a');

    const chunks: Buffer[] = [];
    await stream('http://travels/s', { dispatcher: m.dispatcher, method: 'GET' }, () => {
      return new Writable({
        write(chunk, _enc, cb) {
          chunks.push(chunk);
          cb();
        },
      });
    });
    expect(Buffer.concat(chunks).toString()).toBe('a');

    const f = await undiciFetch('http://travels/f', { dispatcher: m.dispatcher });
    expect(await f.text()).toBe('a');
    expect(a.hits.map((h) => h.url)).toEqual(['/r', '/s', '/f']);
    expect(a.hits.every((h) => h.headers.host === 'travels')).toBe(true);
  });

  it("works with Node's own fetch (its bundled undici) as the dispatcher option", async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    const res = await fetch('http://travels/node', { dispatcher: m.dispatcher } as RequestInit);
    expect(await res.text()).toBe('a');
  });

  it('accepts undici v1-shaped handlers (onConnect/onHeaders/onData/onComplete)', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    const body = await new Promise<string>((resolve, reject) => {
      const parts: Buffer[] = [];
      m.dispatcher.dispatch({ origin: 'http://travels', path: '/legacy', method: 'GET' }, {
        onConnect() {},
        onHeaders: () => true,
        onData: (c: Buffer) => {
          parts.push(c);
          return true;
        },
        onComplete: () => resolve(Buffer.concat(parts).toString()),
        onError: reject,
      } as never);
    });
    expect(body).toBe('a');
  });

  it('streams a request body given as a Readable', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    const r = await request('http://travels/up', {
      dispatcher: m.dispatcher,
      method: 'PUT',
      body: Readable.from(['he', 'llo']),
    });
    await r.body.text();
    expect(a.hits[0]?.body).toBe('hello');
  });
});

describe('failing fast', () => {
  it('rejects an unknown service at once, naming it', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    const err = await m.fetch('http://flights/x').catch((e) => e);
    expect(isMeshworkError(err, 'MESHWORK_ERR_UNKNOWN_SERVICE')).toBe(true);
    expect(err.message).toContain('"flights"');
    const viaDispatcher = await request('http://flights/x', { dispatcher: m.dispatcher }).catch((e) => e);
    expect(viaDispatcher.code).toBe('MESHWORK_ERR_UNKNOWN_SERVICE');
    expect(a.hits).toHaveLength(0);
  });

  it('fails fast with a clear error when a service has no endpoints', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [] } } } });
    const outcome = await Promise.race([
      m.fetch('http://travels/').then(
        () => 'answered',
        (e) => e,
      ),
      new Promise((r) => setTimeout(() => r('hung'), 2000).unref()),
    ]);
    expect(isMeshworkError(outcome, 'MESHWORK_ERR_NO_ENDPOINTS')).toBe(true);
    expect((outcome as Error).message).toMatch(/travels.*0 endpoints/);
  });

  it('refuses requests after close()', async () => {
    const m = mesh({ services: { travels: { discovery: { static: [a.address] } } } });
    await m.close();
    await expect(m.fetch('http://travels/')).rejects.toMatchObject({ code: 'MESHWORK_ERR_CLOSED' });
    const err = await request('http://travels/', { dispatcher: m.dispatcher }).catch((e) => e);
    expect(err.code).toBe('MESHWORK_ERR_CLOSED');
  });

  it('sends unknown hosts through a plain agent with unknownServices: passthrough', async () => {
    const m = mesh({
      unknownServices: 'passthrough',
      services: { travels: { discovery: { static: [b.address] } } },
    });
    const res = await m.fetch(`http://${a.address}/direct`);
    expect(await res.text()).toBe('a');
  });
});

describe('config', () => {
  function configError(config: unknown, env: NodeJS.ProcessEnv = {}): MeshworkConfigError {
    try {
      createMesh({ ...(config as object), env } as never);
    } catch (err) {
      expect(err).toBeInstanceOf(MeshworkConfigError);
      expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG')).toBe(true);
      return err as MeshworkConfigError;
    }
    throw new Error('createMesh accepted a bad config');
  }

  it('names the field path and the bad value', () => {
    const err = configError({
      services: {
        travels: { discovery: { static: [a.address] }, trafficPolicy: { loadBalancer: { simple: 'BOGUS' } } },
      },
    });
    expect(err.message).toContain(
      'services.travels.trafficPolicy.loadBalancer.simple: "BOGUS" is not one of',
    );
    expect(err.message).toContain('PEAK_EWMA');
  });

  it.each([
    [
      { static: ['localhost'] },
      'services.travels.discovery.static[0]: "localhost" is not a valid "host:port"',
    ],
    [{ static: ['127.0.0.1:99999'] }, '"127.0.0.1:99999" is not a valid "host:port"'],
    [
      { static: [{ address: '127.0.0.1:80', weight: 0 }] },
      'services.travels.discovery.static[0].weight: 0 must be > 0',
    ],
    [
      { static: [{ address: '127.0.0.1:80', colour: 'red' }] },
      'services.travels.discovery.static[0].colour: unknown field',
    ],
    [{}, 'services.travels.discovery: {} needs exactly one provider'],
  ])('refuses a bad discovery block %#', (discovery, message) => {
    expect(configError({ services: { travels: { discovery } } }).message).toContain(message);
  });

  it('refuses bad durations, unknown fields and bad service names, all in one error', () => {
    const err = configError({
      colour: 'red',
      services: {
        travels: {
          discovery: { static: [a.address] },
          trafficPolicy: { connectionPool: { tcp: { connectTimeout: 'soon' } } },
        },
        Bad_Name: { discovery: { static: [] } },
      },
    });
    expect(err.message).toContain('colour: unknown field (value "red")');
    expect(err.message).toContain(
      'services.travels.trafficPolicy.connectionPool.tcp.connectTimeout: "soon" is not a duration',
    );
    expect(err.message).toContain('"Bad_Name"');
    expect(err.issues.length).toBeGreaterThanOrEqual(3);
  });

  it('refuses a config that is not an object', () => {
    expect(configError({ services: 'travels' }).message).toContain(
      'services: "travels" is not a valid record',
    );
  });

  it('loads MESHWORK_CONFIG (YAML) and merges the code config over it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshwork-'));
    const file = join(dir, 'mesh.yaml');
    writeFileSync(
      file,
      `zone: eu-1\nservices:\n  travels:\n    discovery:\n      static: ["${b.address}"]\n  flights:\n    discovery:\n      static: ["${b.address}"]\n`,
    );
    const m = mesh({
      env: { MESHWORK_CONFIG: file },
      services: { travels: { discovery: { static: [a.address] } } },
    });
    expect(m.config.zone).toBe('eu-1');
    expect(await (await m.fetch('http://travels/')).text()).toBe('a');
    expect(await (await m.fetch('http://flights/')).text()).toBe('b');
  });

  it('loads a JSON MESHWORK_CONFIG, and names the file when it is missing or broken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshwork-'));
    const file = join(dir, 'mesh.json');
    writeFileSync(file, JSON.stringify({ services: { travels: { discovery: { static: [a.address] } } } }));
    expect(mesh({ env: { MESHWORK_CONFIG: file } }).config.services.travels).toBeDefined();
    expect(configError({}, { MESHWORK_CONFIG: join(dir, 'nope.yaml') }).message).toContain(
      'MESHWORK_CONFIG: "',
    );
    writeFileSync(file, '{ nope: [');
    expect(configError({}, { MESHWORK_CONFIG: file }).message).toContain('is not valid YAML/JSON');
  });
});

describe('snapshot', () => {
  it('is a plain object with every endpoint and its state', async () => {
    const m = mesh({
      services: {
        travels: {
          discovery: {
            static: [{ address: a.address, labels: { version: 'v1' }, weight: 3, zone: 'z1' }, b.address],
          },
        },
      },
    });
    await (await m.fetch('http://travels/')).text();
    const snap = m.snapshot();
    expect(JSON.parse(JSON.stringify(snap))).toEqual(JSON.parse(JSON.stringify(snap)));
    const eps = snap.services.travels?.endpoints ?? [];
    expect(eps).toHaveLength(2);
    expect(eps.find((e) => e.address === a.address)).toMatchObject({
      labels: { version: 'v1' },
      weight: 3,
      zone: 'z1',
      healthy: true,
      ejected: false,
      inflight: 0,
    });
    for (const e of eps) expect(typeof e.ewmaMs).toBe('number');
    expect(snap.services.travels?.loadBalancer).toBe('PEAK_EWMA');
    expect(snap.services.travels?.discovery).toMatchObject({ provider: 'static', state: 'ready' });
  });

  it('shows in-flight requests while they run', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = await startServer(async (_req, res) => {
      await gate;
      res.end('done');
    });
    const m = mesh({ services: { travels: { discovery: { static: [slow.address] } } } });
    const pending = m.fetch('http://travels/');
    await new Promise((r) => setTimeout(r, 100));
    expect(m.snapshot().services.travels?.endpoints[0]?.inflight).toBe(1);
    release();
    await (await pending).text();
    expect(m.snapshot().services.travels?.endpoints[0]?.inflight).toBe(0);
    await slow.close();
  });
});

describe('setGlobalDispatcher', () => {
  it("routes undici.request and Node's global fetch through the mesh, passing other hosts through", async () => {
    const { Agent, getGlobalDispatcher, setGlobalDispatcher } = await import('undici');
    const previous = getGlobalDispatcher();
    const m = mesh({
      unknownServices: 'passthrough',
      services: { travels: { discovery: { static: [a.address] } } },
    });
    setGlobalDispatcher(m.dispatcher);
    try {
      expect(await (await request('http://travels/g1')).body.text()).toBe('a');
      expect(await (await fetch('http://travels/g2')).text()).toBe('a');
      expect(await (await fetch(`http://${b.address}/direct`)).text()).toBe('b');
      expect(a.hits.map((h) => [h.url, h.headers.host])).toEqual([
        ['/g1', 'travels'],
        ['/g2', 'travels'],
      ]);
    } finally {
      setGlobalDispatcher(previous ?? new Agent());
    }
  });
});
