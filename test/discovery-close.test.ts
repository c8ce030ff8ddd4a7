import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConsulDouble } from './support/consul-double.ts';
import { testServices } from './support/services.ts';

describe('close()', () => {
  it('leaves nothing holding the process open (all providers, while watching)', async () => {
    const consul = await new ConsulDouble().start();
    consul.register({ id: 'a', service: 'api', address: '127.0.0.2', port: 80 });
    const dir = mkdtempSync(join(tmpdir(), 'meshwork-close-'));
    const file = join(dir, 'eps.json');
    writeFileSync(file, '["127.0.0.1:80"]');
    const svc = testServices();
    const script = fileURLToPath(new URL('./support/close-all.ts', import.meta.url));
    try {
      const child = spawn(
        process.execPath,
        [script, String(consul.port), svc.dns ?? '', svc.etcd ?? '', file],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
      });
      child.stderr.on('data', (d) => {
        out += d;
      });
      const code = await new Promise<number | string>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve('still running 10s after close()');
        }, 10_000);
        child.on('exit', (c) => {
          clearTimeout(timer);
          resolve(c ?? -1);
        });
      });
      expect(code, out).toBe(0);
      expect(out).toMatch(/closed ready=/);
    } finally {
      await consul.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
