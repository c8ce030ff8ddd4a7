import { Readable } from 'node:stream';
import { requestFailure } from '../errors.ts';
import { failRequest, type Layer } from '../pipeline.ts';

/** Linkerd buffers request bodies up to 64 KiB so that a retry can send them again. */
export const DEFAULT_REPLAY_BUFFER_BYTES = 64 * 1024;

/**
 * A body still arriving after this long is sent on as a stream, not replayable, so that a slow
 * or long-lived upload is never held back waiting to be buffered.
 */
export const DEFAULT_REPLAY_BUFFER_WAIT_MS = 250;

/** True when the body can be sent more than once as it is (none, string, bytes). */
export function isReplayable(body: unknown): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
}

function isStreamBody(body: unknown): body is AsyncIterable<unknown> {
  return typeof body === 'object' && body !== null && Symbol.asyncIterator in body;
}

/**
 * Makes a streamed request body replayable when it is small: reads it up to `limit` bytes
 * before the first send. A body that ends within the limit becomes one Buffer, which retries,
 * hedges and mirrors can send again. A longer body goes on as a stream made of the chunks read
 * so far and the rest: it is sent once and never replayed. undici's fetch always hands its body
 * over as a stream, so this is what lets a `mesh.fetch` POST be retried or mirrored at all.
 */
export function bodyLayer(
  limit: number = DEFAULT_REPLAY_BUFFER_BYTES,
  waitMs: number = DEFAULT_REPLAY_BUFFER_WAIT_MS,
): Layer {
  return (next) => (req, handler) => {
    const body = req.opts.body;
    if (!isStreamBody(body)) return next(req, handler);
    bufferUpTo(body, limit, waitMs).then(
      (result) => {
        req.opts.body = result.complete ? result.buffer : result.stream;
        next(req, handler);
      },
      // The caller's body failed before anything was sent.
      (err: Error) => failRequest(handler, requestFailure(err, 0, undefined)),
    );
  };
}

type Buffered = { complete: true; buffer: Buffer } | { complete: false; stream: Readable };

async function bufferUpTo(body: AsyncIterable<unknown>, limit: number, waitMs: number): Promise<Buffered> {
  const it = body[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), waitMs);
    timer.unref();
  });
  let pending: Promise<IteratorResult<unknown>> | undefined;
  try {
    while (size <= limit) {
      pending = it.next();
      const step = await Promise.race([pending, late]);
      if (step === 'late') break;
      pending = undefined;
      if (step.done) return { complete: true, buffer: Buffer.concat(chunks, size) };
      const chunk = toBuffer(step.value);
      chunks.push(chunk);
      size += chunk.length;
    }
  } finally {
    clearTimeout(timer);
  }
  // Over the limit or too slow: hand on what was read, then the rest of the original stream.
  const inFlight = pending;
  async function* rest(): AsyncGenerator<Buffer> {
    yield* chunks;
    if (inFlight) {
      const first = await inFlight;
      if (first.done) return;
      yield toBuffer(first.value);
    }
    for (;;) {
      const { value, done } = await it.next();
      if (done) return;
      yield toBuffer(value);
    }
  }
  return { complete: false, stream: Readable.from(rest(), { objectMode: false }) };
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk));
}
