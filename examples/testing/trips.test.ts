// Testing service code that calls through meshwork, two ways:
//   - msw: `transport: fetchTransport()` hands every attempt to the global fetch, which msw
//     intercepts (msw patches globalThis.fetch and node:http, never meshwork's own undici pools);
//   - undici's MockAgent: `transport: mockAgent`.
// Either way the mesh itself still runs (routing, retries, timeouts, mesh.agent): the tests see
// what production would do with these answers.
import { HttpResponse, http } from 'msw';
import { setupServer } from 'msw/node';
import { MockAgent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fetchTransport, isMeshworkError, type Mesh } from '../../src/index.ts';
import { bookTrip, cheapestTrip, tripsMesh } from './trips.ts';

const TRIPS = [
  { id: 'ams-1', from: 'AMS', price: 120 },
  { id: 'ams-2', from: 'AMS', price: 80 },
];

describe('with msw handlers', () => {
  const server = setupServer();
  let mesh: Mesh;
  beforeAll(() => server.listen({ onUnhandledFrame: 'error' }));
  afterEach(async () => {
    server.resetHandlers();
    await mesh.close();
  });
  afterAll(() => server.close());

  it('returns the cheapest trip', async () => {
    server.use(
      http.get('http://travels/trips', ({ request }) =>
        HttpResponse.json(TRIPS.filter((t) => t.from === new URL(request.url).searchParams.get('from'))),
      ),
    );
    mesh = tripsMesh({ transport: fetchTransport() });
    expect(await cheapestTrip(mesh, 'AMS')).toEqual({ id: 'ams-2', from: 'AMS', price: 80 });
  });

  it('rides out a 503 and a dropped connection: the mesh retries them', async () => {
    const answers = [
      () => new HttpResponse('busy', { status: 503 }),
      () => HttpResponse.error(), // a network error: the mesh sees a reset connection
      () => HttpResponse.json(TRIPS),
    ];
    let calls = 0;
    server.use(http.get('http://travels/trips', () => (answers[calls++] as () => Response)()));
    mesh = tripsMesh({ transport: fetchTransport() });
    expect((await cheapestTrip(mesh, 'AMS'))?.id).toBe('ams-2');
    expect(calls).toBe(3);
  });

  it('gives up after the configured retries, with the last answer', async () => {
    server.use(http.get('http://travels/trips', () => new HttpResponse('down', { status: 503 })));
    mesh = tripsMesh({ transport: fetchTransport() });
    await expect(cheapestTrip(mesh, 'AMS')).rejects.toThrow('travels answered 503');
  });

  it('books with axios through mesh.agent; msw sees the request the upstream would', async () => {
    let seen: { body: unknown; key: string | null; host: string } | undefined;
    server.use(
      http.post('http://bookings/bookings', async ({ request }) => {
        seen = {
          body: await request.json(),
          key: request.headers.get('idempotency-key'),
          host: new URL(request.url).host,
        };
        return HttpResponse.json({ booking: 'B-42' }, { status: 201 });
      }),
    );
    mesh = tripsMesh({ transport: fetchTransport() });
    expect(await bookTrip(mesh, 'ams-2')).toBe('B-42');
    expect(seen).toEqual({ body: { trip: 'ams-2' }, key: 'book-ams-2', host: 'bookings' });
  });
});

describe('with undici’s MockAgent', () => {
  let agent: MockAgent;
  let mesh: Mesh;
  beforeAll(() => {
    agent = new MockAgent();
    agent.disableNetConnect(); // anything not intercepted fails
  });
  afterEach(async () => {
    agent.assertNoPendingInterceptors();
    await mesh.close();
  });
  afterAll(() => agent.close());

  it('returns the cheapest trip; a 503 first is retried', async () => {
    const travels = agent.get('http://travels');
    travels.intercept({ path: '/trips?from=AMS', method: 'GET' }).reply(503, 'busy');
    travels
      .intercept({ path: '/trips?from=AMS', method: 'GET' })
      .reply(200, TRIPS, { headers: { 'content-type': 'application/json' } });
    mesh = tripsMesh({ transport: agent });
    expect((await cheapestTrip(mesh, 'AMS'))?.price).toBe(80);
    // Both attempts went through the mesh's balancer, to different replicas.
    const attempts = mesh.snapshot().services.travels?.endpoints.map((e) => e.attempts);
    expect(attempts).toEqual([1, 1]);
  });

  it('a connection error on every attempt reaches the caller in the mesh’s error shape', async () => {
    const travels = agent.get('http://travels');
    for (let i = 0; i < 3; i++)
      travels
        .intercept({ path: '/trips?from=AMS', method: 'GET' })
        .replyWithError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    mesh = tripsMesh({ transport: agent });
    const err = await cheapestTrip(mesh, 'AMS').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', attempts: 3 });
    expect(isMeshworkError(err)).toBe(false);
  });

  it('books with axios through mesh.agent', async () => {
    agent
      .get('http://bookings')
      .intercept({
        path: '/bookings',
        method: 'POST',
        headers: { 'idempotency-key': 'book-ams-1' },
        body: (b) => JSON.parse(b).trip === 'ams-1',
      })
      .reply(201, { booking: 'B-7' }, { headers: { 'content-type': 'application/json' } });
    mesh = tripsMesh({ transport: agent });
    expect(await bookTrip(mesh, 'ams-1')).toBe('B-7');
  });
});
