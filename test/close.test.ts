import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type TestServer } from './support/servers.ts';

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
  server.server.keepAliveTimeout = 60_000;
});
afterAll(() => server.close());

function runChild(...args: string[]): Promise<{ code: number | string; out: string }> {
  const script = fileURLToPath(new URL('./fixtures/close-child.ts', import.meta.url));
  const child = spawn(process.execPath, [script, server.address, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ code: 'still running after 6 s', out });
    }, 6000);
    child.on('exit', (c) => {
      clearTimeout(t);
      resolve({ code: c ?? -1, out });
    });
  });
}

// undici unrefs idle pooled sockets, so what close() must release are discovery watchers,
// timers and in-flight work. If close() never resolved, the child would die of an unsettled
// top-level await and never print "closed".
it('close() resolves and leaves nothing holding the process open', async () => {
  const { code, out } = await runChild();
  expect(code).toBe(0);
  expect(out.trim()).toBe('closed');
});
