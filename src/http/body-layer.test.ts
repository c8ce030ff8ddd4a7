import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { MeshRequest } from '../pipeline.ts';
import { bodyLayer, isReplayable } from './body-layer.ts';

function run(body: unknown, limit: number, waitMs = 1000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = { opts: { body } } as unknown as MeshRequest;
    const layer = bodyLayer(limit, waitMs)((r) => resolve(r.opts.body));
    layer(req, { onResponseError: (_c: unknown, e: Error) => reject(e) } as never);
  });
}

async function drain(body: unknown): Promise<string> {
  if (Buffer.isBuffer(body)) return body.toString();
  let out = '';
  for await (const c of body as AsyncIterable<Buffer>) out += c.toString();
  return out;
}

describe('bodyLayer', () => {
  it('turns a short streamed body into one replayable Buffer', async () => {
    const body = await run(Readable.from([Buffer.from('he'), Buffer.from('llo')]), 1024);
    expect(Buffer.isBuffer(body)).toBe(true);
    expect(isReplayable(body)).toBe(true);
    expect(await drain(body)).toBe('hello');
  });

  it('passes a body over the limit on as a stream, whole and in order, not replayable', async () => {
    const parts = Array.from({ length: 10 }, (_, i) => Buffer.alloc(100, 97 + i));
    const body = await run(Readable.from(parts), 250);
    expect(isReplayable(body)).toBe(false);
    expect(await drain(body)).toBe(Buffer.concat(parts).toString());
  });

  it('does not hold back a slow body: after the wait it goes on as a stream', async () => {
    async function* slow() {
      yield Buffer.from('a');
      await new Promise((r) => setTimeout(r, 200));
      yield Buffer.from('b');
    }
    const body = await run(slow(), 1024, 50);
    expect(isReplayable(body)).toBe(false);
    expect(await drain(body)).toBe('ab');
  });

  it('leaves strings and buffers alone', async () => {
    expect(await run('x', 10)).toBe('x');
    expect(isReplayable(undefined)).toBe(true);
  });
});
