import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { MeshRequest } from '../pipeline.ts';
import {
  bodyLayer,
  DEFAULT_REPLAY_BUFFER_BYTES,
  DEFAULT_REPLAY_BUFFER_WAIT_MS,
  isReplayable,
} from './body-layer.ts';

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

describe('bodyLayer: the edges', () => {
  it('buffers up to 64 KiB and waits at most 250 ms by default (Linkerd)', () => {
    expect(DEFAULT_REPLAY_BUFFER_BYTES).toBe(65_536);
    expect(DEFAULT_REPLAY_BUFFER_WAIT_MS).toBe(250);
  });

  it('a body of exactly the limit is buffered; one byte more goes on as a stream', async () => {
    const exact = await run(Readable.from([Buffer.alloc(50, 120), Buffer.alloc(50, 121)]), 100);
    expect(Buffer.isBuffer(exact)).toBe(true);
    expect((exact as Buffer).length).toBe(100);
    const over = await run(Readable.from([Buffer.alloc(50, 120), Buffer.alloc(51, 121)]), 100);
    expect(isReplayable(over)).toBe(false);
    expect((await drain(over)).length).toBe(101);
  });

  it('the default limit applies when none is given', async () => {
    const body = await new Promise<unknown>((resolve) => {
      const req = { opts: { body: Readable.from([Buffer.alloc(65_536, 97)]) } } as unknown as MeshRequest;
      bodyLayer()((r) => resolve(r.opts.body))(req, {} as never);
    });
    expect(Buffer.isBuffer(body)).toBe(true);
  });

  it('takes Uint8Array views (at their offset) and strings as chunks', async () => {
    const bytes = new Uint8Array([0, 104, 105, 0]).subarray(1, 3);
    async function* mixed() {
      yield bytes;
      yield '!';
      yield 7;
    }
    const body = await run(mixed(), 1024);
    expect(Buffer.isBuffer(body)).toBe(true);
    expect((body as Buffer).toString()).toBe('hi!7');
  });

  it('a slow body that then ends goes on as the part read', async () => {
    async function* slowEnd() {
      yield Buffer.from('a');
      await new Promise((r) => setTimeout(r, 150));
    }
    const body = await run(slowEnd(), 1024, 30);
    expect(isReplayable(body)).toBe(false);
    expect(await drain(body)).toBe('a');
  });

  it('a body that fails before anything was sent fails the request, with 0 attempts', async () => {
    async function* broken(): AsyncGenerator<Buffer> {
      yield Buffer.from('a');
      throw Object.assign(new Error('caller body broke'), { code: 'EPIPE' });
    }
    const calls: string[] = [];
    let err: (Error & { attempts?: number }) | undefined;
    let sent = 0;
    await new Promise<void>((resolve) => {
      const req = { opts: { body: broken() } } as unknown as MeshRequest;
      bodyLayer(
        1024,
        1000,
      )(() => {
        sent++;
      })(req, {
        onRequestStart: () => calls.push('start'),
        onResponseError: (_c: unknown, e: Error) => {
          err = e;
          calls.push('error');
          resolve();
        },
      } as never);
    });
    expect(sent).toBe(0);
    expect(calls).toEqual(['start', 'error']);
    expect(err?.message).toBe('caller body broke');
    expect(err?.attempts).toBe(0);
  });

  it('hands a body that is not a stream on at once, untouched', () => {
    for (const body of [undefined, null, 'x', Buffer.from('y'), { not: 'a stream' }]) {
      const req = { opts: { body } } as unknown as MeshRequest;
      let got: unknown = 'not called';
      bodyLayer(
        10,
        10,
      )((r) => {
        got = r.opts.body;
      })(req, {} as never);
      expect(got).toBe(body);
    }
  });

  it('isReplayable: none, null, a string or bytes; not a stream or another object', () => {
    expect(isReplayable(null)).toBe(true);
    expect(isReplayable('')).toBe(true);
    expect(isReplayable(new Uint8Array(1))).toBe(true);
    expect(isReplayable(Readable.from([]))).toBe(false);
    expect(isReplayable({})).toBe(false);
    expect(isReplayable(0)).toBe(false);
  });
});
