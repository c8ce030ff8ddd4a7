// The test seam: `createMesh({ transport })` replaces every endpoint's pool (docs/testing.md).
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createMesh, fetchTransport, type Mesh, MeshworkConfigError } from '../src/index.ts';
import { createPki } from './support/certs.ts';

const meshes: Mesh[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});

function mesh(input: Record<string, unknown>): Mesh {
  const m = createMesh({ env: {}, ...input } as never);
  meshes.push(m);
  return m;
}

describe('transport (tests only)', () => {
  it('sends each attempt to the transport with the origin the upstream would be addressed as', async () => {
    const seen: { url: string; method: string; host: string | null; body: string }[] = [];
    const fake: typeof fetch = async (input, init) => {
      const body = init?.body ? await new Response(init.body as never).text() : '';
      seen.push({
        url: String(input),
        method: String(init?.method),
        host: new Headers(init?.headers).get('host'),
        body,
      });
      return new Response('ok', { status: 200, headers: { 'x-trip': 't1' } });
    };
    const pki = createPki();
    try {
      const m = mesh({
        transport: fetchTransport(fake),
        services: {
          travels: {
            discovery: { static: ['10.0.0.1:8080'] },
            http: [
              {
                match: [{ uri: { prefix: '/v2' } }],
                rewrite: { authority: 'travels-v2' },
                route: [{ destination: { host: 'travels' } }],
              },
              { route: [{ destination: { host: 'travels' } }] },
            ],
          },
          secure: {
            discovery: { static: ['10.0.0.2:8443'] },
            trafficPolicy: { tls: { mode: 'SIMPLE', caCertificates: pki.ca } },
          },
        },
      });
      const r = await m.fetch('http://travels:8080/trips?x=1', { method: 'POST', body: 'b'.repeat(100_000) });
      expect(await r.text()).toBe('ok');
      expect(r.headers.get('x-trip')).toBe('t1');
      await (await m.fetch('http://travels/v2/trips')).text();
      await (await m.fetch('http://secure/x')).text();
      expect(seen.map((s) => [s.url, s.method, s.host, s.body.length])).toEqual([
        ['http://travels:8080/trips?x=1', 'POST', null, 100_000],
        ['http://travels-v2/v2/trips', 'GET', null, 0],
        ['https://secure/x', 'GET', null, 0],
      ]);
      // The endpoints' own counters still move: the balancer picked them.
      expect(m.snapshot().services.travels?.endpoints[0]?.attempts).toBe(2);
    } finally {
      pki.cleanup();
    }
  });

  it('works with undici’s MockAgent; what it does not intercept fails', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    agent.get('http://travels').intercept({ path: '/a' }).reply(200, 'mocked');
    const m = mesh({
      transport: agent,
      services: { travels: { discovery: { static: ['10.0.0.1:80'] }, retries: { attempts: 0 } } },
    });
    expect(await (await m.fetch('http://travels/a')).text()).toBe('mocked');
    const err = await m.fetch('http://travels/unmocked').catch((e: unknown) => e);
    expect(err).toMatchObject({ attempts: 1, endpoint: '10.0.0.1:80' });
    await agent.close();
  });

  it('is refused unless it is a Dispatcher', () => {
    expect(() => createMesh({ env: {}, transport: {} as never, services: {} })).toThrow(MeshworkConfigError);
    expect(() => createMesh({ env: {}, transport: 'msw' as never, services: {} })).toThrow(
      /transport: .*undici Dispatcher/,
    );
  });
});
