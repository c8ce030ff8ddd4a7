/** Helpers for the balancer unit tests (not part of the public API). */
import { Endpoint } from './endpoint.ts';

/** The seeded PRNG every test uses (mulberry32), so that tests are reproducible. */
export { seededRandom as seeded } from '../../test/support/seeded-random.ts';

export interface MakeOptions {
  weight?: number;
  zone?: string;
  now?: number;
}

/** Real Endpoints (their undici Pool connects nothing until used). Close them with closeAll. */
export function makeEndpoints(n: number, opts: MakeOptions = {}, offset = 0): Endpoint[] {
  const out: Endpoint[] = [];
  for (let i = 0; i < n; i++) out.push(makeEndpoint(offset + i, opts));
  return out;
}

export function makeEndpoint(i: number, opts: MakeOptions = {}): Endpoint {
  const a = 10 + Math.floor(i / 65536);
  const port = 1024 + (i % 60000);
  const host = `10.${a % 256}.${Math.floor(i / 256) % 256}.${i % 256}`;
  return new Endpoint(
    { address: `${host}:${port}`, host, port, labels: {}, weight: opts.weight ?? 1, zone: opts.zone },
    { now: opts.now ?? 0 },
  );
}

export async function closeAll(endpoints: readonly Endpoint[]): Promise<void> {
  await Promise.all(endpoints.map((ep) => ep.closePool(1_000)));
}

/** Counts picks per endpoint. */
export function tally(
  picks: number,
  pick: () => Endpoint | undefined,
): { counts: Map<Endpoint | undefined, number>; of: (ep: Endpoint | undefined) => number } {
  const counts = new Map<Endpoint | undefined, number>();
  for (let i = 0; i < picks; i++) {
    const ep = pick();
    counts.set(ep, (counts.get(ep) ?? 0) + 1);
  }
  return { counts, of: (ep) => counts.get(ep) ?? 0 };
}
