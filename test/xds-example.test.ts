// The xDS example (examples/xds/run.ts) as a newcomer runs it: a child process, checked by its exit
// code and the lines that say what the mesh did.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const run = fileURLToPath(new URL('../examples/xds/run.ts', import.meta.url));

test('the xDS example follows the control plane through a canary, an outage and a reconnection', {
  timeout: 90_000,
}, async () => {
  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [run],
      { timeout: 80_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
      },
    );
  });
  expect(out.code, `${out.stdout}\n${out.stderr}`).toBe(0);
  expect(out.stdout).toContain('✔ all traffic to v1');
  expect(out.stdout).toMatch(/✔ v2 took \d+\/500/);
  expect(out.stdout).toContain('✔ 20/20 answered by v2 during the outage');
  expect(out.stdout).toContain('All xDS checks passed.');
  expect(out.stdout).not.toContain('✘');
});
