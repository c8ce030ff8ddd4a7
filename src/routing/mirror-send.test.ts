/** startMirror with real HTTP servers: the copy never holds up the main response. */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { MirrorGate, startMirror } from './mirror.ts';

const servers: Server[] = [];

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

describe('startMirror', () => {
  it('the main response completes while the mirror target is still holding the copy', async () => {
    let releaseMirror!: () => void;
    const mirrorHeld = new Promise<void>((r) => {
      releaseMirror = r;
    });
    let mirrorReceived!: () => void;
    const mirrorArrived = new Promise<void>((r) => {
      mirrorReceived = r;
    });
    const mirrorUrl = await listen((_req, res) => {
      mirrorReceived();
      mirrorHeld.then(() => res.end('mirror'));
    });
    const mainUrl = await listen((_req, res) => res.end('main'));

    const gate = new MirrorGate(4);
    let mirrorDone = false;
    const started = startMirror(gate, async (signal) => {
      const r = await request(`${mirrorUrl}/copy`, { signal });
      await r.body.text();
      mirrorDone = true;
    });
    expect(started).toBe(true);
    await mirrorArrived;

    const main = await request(`${mainUrl}/`);
    expect(await main.body.text()).toBe('main');
    expect(mirrorDone).toBe(false); // the copy is still held by its server
    expect(gate.inFlight).toBe(1);

    releaseMirror();
    await new Promise<void>((r) => {
      const poll = () => (gate.inFlight === 0 ? r() : setTimeout(poll, 5));
      poll();
    });
    expect(mirrorDone).toBe(true);
  });

  it('a failing or hanging copy frees its slot (bounded by timeoutMs) and never throws', async () => {
    const hangUrl = await listen(() => {
      /* never answers */
    });
    const gate = new MirrorGate(1);
    const errors: unknown[] = [];
    expect(
      startMirror(gate, (signal) => request(`${hangUrl}/`, { signal }), {
        timeoutMs: 50,
        onError: (e) => errors.push(e),
      }),
    ).toBe(true);
    expect(startMirror(gate, async () => {})).toBe(false); // full: dropped at once
    expect(gate.dropped).toBe(1);
    await new Promise<void>((r) => {
      const poll = () => (gate.inFlight === 0 ? r() : setTimeout(poll, 5));
      poll();
    });
    expect(errors).toHaveLength(1);
    // a send that throws synchronously is contained too
    expect(
      startMirror(gate, () => {
        throw new Error('boom');
      }),
    ).toBe(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(gate.inFlight).toBe(0);
  });
});
