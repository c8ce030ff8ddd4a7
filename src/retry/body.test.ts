import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { needsBuffering, prepareBody } from './body.ts';

async function drain(body: unknown): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString();
}

describe('request body replay', () => {
  it('strings and buffers are replayable as they are', async () => {
    expect(await prepareBody('abc', 10)).toEqual({ body: 'abc', replayable: true });
    expect((await prepareBody(null, 10)).replayable).toBe(true);
    expect(needsBuffering(Buffer.from('x'))).toBe(false);
  });

  it('a stream that ends within the limit becomes a Buffer', async () => {
    const s = Readable.from([Buffer.from('ab'), Buffer.from('cd')]);
    expect(needsBuffering(s)).toBe(true);
    const p = await prepareBody(s, 10);
    expect(p.replayable).toBe(true);
    expect(Buffer.isBuffer(p.body)).toBe(true);
    expect(String(p.body)).toBe('abcd');
  });

  it('a stream over the limit is sent whole and not replayable', async () => {
    const s = Readable.from([Buffer.from('aaaa'), Buffer.from('bbbb'), Buffer.from('cccc')]);
    const p = await prepareBody(s, 5);
    expect(p.replayable).toBe(false);
    expect(await drain(p.body)).toBe('aaaabbbbcccc');
  });
});
