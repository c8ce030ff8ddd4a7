// Service code that calls other services through meshwork: what examples/testing/trips.test.ts
// tests, with msw handlers and with undici's MockAgent. In your project, import from 'meshwork'.
import axios from 'axios';
import { type CreateMeshInput, createMesh, type Mesh } from '../../src/index.ts';

export interface Trip {
  id: string;
  from: string;
  price: number;
}

/**
 * The mesh as the service creates it in production. Tests pass `transport` (and nothing else),
 * so the routing, retry and timeout policy under test is the real one.
 */
export function tripsMesh(options: Pick<CreateMeshInput, 'transport'> = {}): Mesh {
  return createMesh({
    ...options,
    services: {
      travels: {
        discovery: { static: ['travels-1.internal:8080', 'travels-2.internal:8080'] },
        retries: { attempts: 2, retryOn: '5xx,reset,connect-failure' },
        timeout: '2s',
      },
      bookings: {
        discovery: { static: ['bookings.internal:8080'] },
        retries: { attempts: 1, retryOn: '503' },
      },
    },
  });
}

/** Asks the travels service for trips from a city; returns the cheapest. */
export async function cheapestTrip(mesh: Mesh, from: string): Promise<Trip | undefined> {
  const res = await mesh.fetch(`http://travels/trips?from=${encodeURIComponent(from)}`);
  if (!res.ok) throw new Error(`travels answered ${res.status}`);
  const trips = (await res.json()) as Trip[];
  return [...trips].sort((a, b) => a.price - b.price)[0];
}

/** Books a trip with axios, sent through the mesh by mesh.agent. */
export async function bookTrip(mesh: Mesh, tripId: string): Promise<string> {
  const bookings = axios.create({ httpAgent: mesh.agent, proxy: false });
  const res = await bookings.post<{ booking: string }>(
    'http://bookings/bookings',
    { trip: tripId },
    // Makes the POST safe to retry (the mesh retries non-idempotent requests only with one).
    { headers: { 'idempotency-key': `book-${tripId}` } },
  );
  return res.data.booking;
}
