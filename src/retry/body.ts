/**
 * Request bodies and replay. A string/Buffer/Uint8Array body (or none) is replayable as is.
 * An async-iterable body (a Node stream, or what undici's fetch sends) is read before the first
 * send, up to the limit (64 KiB): if it ends within the limit it becomes a Buffer and is
 * replayable; otherwise the bytes read so far are sent ahead of the rest of the stream and the
 * request is never replayed. Anything else (FormData, ...) is sent as is and never replayed.
 */

export type PreparedBody = { body: unknown; replayable: boolean };

export function isReplayable(body: unknown): boolean {
  return body == null || typeof body === 'string' || body instanceof Uint8Array;
}

function isAsyncIterable(body: unknown): body is AsyncIterable<unknown> {
  return (
    typeof body === 'object' &&
    body !== null &&
    typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
  );
}

/** True when prepareBody must run (asynchronously) before the first send. */
export function needsBuffering(body: unknown): boolean {
  return !isReplayable(body) && isAsyncIterable(body);
}

function toBuffer(chunk: unknown): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk));
}

export async function prepareBody(body: unknown, limit: number): Promise<PreparedBody> {
  if (isReplayable(body)) return { body, replayable: true };
  if (!isAsyncIterable(body)) return { body, replayable: false };
  const it = body[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const r = await it.next();
    if (r.done) return { body: Buffer.concat(chunks, size), replayable: true };
    const b = toBuffer(r.value);
    chunks.push(b);
    size += b.length;
    if (size > limit) break;
  }
  async function* rest(): AsyncGenerator<Buffer> {
    for (const c of chunks) yield c;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield toBuffer(r.value);
    }
  }
  return { body: rest(), replayable: false };
}
