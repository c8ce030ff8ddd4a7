// The Travelz portal in its own process. For each booking it asks the agency for a trip, a hotel
// and a car, through meshwork: `mesh.fetch('http://travels/...')` by name, nothing else. Which
// travels version answers, the hotel timeouts and retries, the car replica ejection: all mesh
// config (MESHWORK_CONFIG, written by run.ts), none of it in this code.
import { json, runNode } from './node.ts';

runNode('portal', 'v1', async (req, res, mesh) => {
  const url = new URL(req.url ?? '/', 'http://portal');
  // Demo knob: which hotels route to exercise (see run.ts); a real portal would not have it.
  const hotelsMode = url.searchParams.get('hotels') ?? 'contained';
  const timed = async (path: string, headers?: Record<string, string>) => {
    const t0 = performance.now();
    try {
      const r = await mesh.fetch(path, headers ? { headers } : undefined);
      const text = await r.text();
      const ms = performance.now() - t0;
      if (r.headers.get('content-type')?.startsWith('application/json'))
        return { status: r.status, ms, ...(JSON.parse(text) as Record<string, unknown>) };
      // Not the service's own answer (a rate-limit refusal): keep what the caller needs to know.
      const keep = ['retry-after', 'ratelimit', 'ratelimit-policy'].filter((h) => r.headers.has(h));
      return {
        status: r.status,
        ms,
        error: text.trim(),
        headers: Object.fromEntries(keep.map((h) => [h, r.headers.get(h)])),
      };
    } catch (err) {
      return { status: 0, ms: performance.now() - t0, error: (err as { code?: string }).code ?? String(err) };
    }
  };
  const [travels, hotels, cars] = await Promise.all([
    timed('http://travels/trips/42'),
    timed('http://hotels/rooms?city=AMS', { 'x-demo-hotels': hotelsMode }),
    timed('http://cars/rentals?city=AMS'),
  ]);
  const ok = travels.status === 200 && hotels.status === 200 && cars.status === 200;
  // Over the partner's quota on travels: the booking is refused as travels refused it.
  if (travels.status === 429) {
    for (const [h, v] of Object.entries((travels as { headers?: Record<string, string> }).headers ?? {}))
      res.setHeader(h, v);
    json(res, 429, { travels, hotels, cars });
    return;
  }
  json(res, ok ? 200 : 502, { travels, hotels, cars });
});
