/**
 * Edits the header views of an inbound request together, so that service code reads the same
 * thing from each: `req.headers`, `req.headersDistinct` and `req.rawHeaders` (Express's
 * `req.get()` and Fastify's `request.headers` read `req.headers`).
 */
import type { IncomingMessage } from 'node:http';

/**
 * Removes the `remove` headers and sets the `set` ones (one value each). Names are lowercase.
 * Only called when something changes: it materializes `headersDistinct` and rewrites `rawHeaders`.
 */
export function editRequestHeaders(
  req: IncomingMessage,
  remove: ReadonlySet<string>,
  set: ReadonlyMap<string, string>,
): void {
  // Node builds headersDistinct lazily from rawHeaders, reading as many entries as it parsed:
  // build it now, before rawHeaders gets shorter (and so that it can be edited as well).
  const distinct = 'headersDistinct' in req ? req.headersDistinct : undefined;
  const headers = req.headers;
  for (const name of remove) {
    delete headers[name];
    if (distinct) delete distinct[name];
  }
  for (const [name, value] of set) {
    headers[name] = value;
    if (distinct) distinct[name] = [value];
  }
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) return;
  let w = 0;
  for (let r = 0; r + 1 < raw.length; r += 2) {
    const name = (raw[r] as string).toLowerCase();
    if (remove.has(name) || set.has(name)) continue;
    raw[w++] = raw[r] as string;
    raw[w++] = raw[r + 1] as string;
  }
  raw.length = w;
  for (const [name, value] of set) raw.push(name, value);
}
