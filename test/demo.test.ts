// `npm run demo` as a newcomer runs it: the Travelz scenario in child processes, checked by its
// exit code and the lines that say what the mesh did.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const run = fileURLToPath(new URL('../examples/travelz/run.ts', import.meta.url));

function demo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [run, ...args],
      { timeout: 80_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
      },
    );
  });
}

function expectScenario(
  out: { code: number | null; stdout: string; stderr: string },
  opts: { partnerMesh?: boolean } = {},
): void {
  const { code, stdout, stderr } = out;
  expect(code, `${stdout}\n${stderr}`).toBe(0);
  expect(stdout).toContain('✔ partner (acme-travel) -> travels v2: 40/40');
  expect(stdout).toContain('✔ internal (intranet) -> travels v1: 40/40');
  expect(stdout).toContain('✔ unsigned gateway headers are not trusted');
  expect(stdout).toContain('✔ trace context arrives unchanged at the deepest hop');
  if (opts.partnerMesh) {
    expect(stdout).toContain(
      "✔ mTLS end to end through the partner's gateway: flights verified travels' own SPIFFE ID",
    );
    expect(stdout).toContain(
      "✔ gateway context stays in Travelz: the partner's flights got no app, plan or token",
    );
  } else expect(stdout).toContain('✔ gateway context (app, plan) arrives at the deepest hop');
  expect(stdout).toMatch(/measured canary share \d+\.\d% of \d+/);
  expect(stdout).toContain('✔ every travels process applied the new weights within 5 s, without a restart');
  expect(stdout).toContain('✔ every booking after the change reached flights v2');
  expect(stdout).toContain('✔ contained: every hotel call succeeds');
  expect(stdout).toMatch(/✔ the broken cars replica 127\.0\.0\.1:\d+ is ejected: true/);
  expect(stdout).toContain('✔ callers see 100% success from cars');
  expect(stdout).toContain('✔ a partner application over its daily quota gets 429 after 10 bookings');
  expect(stdout).toContain('✔ every 429 carries Retry-After and the RateLimit header');
  expect(stdout).toContain('✔ another partner application is not affected (limits are per application)');
  expect(stdout).toMatch(/✔ the admin page shows globex's usage: 10 today, 4 refused/);
  expect(stdout).toContain('✔ every booking succeeded end to end (success 100%)');
  expect(stdout).toContain('All Travelz checks passed.');
  expect(stdout).not.toContain('✘');
}

test('the Travelz demo runs every scenario on static discovery and exits 0', {
  timeout: 90_000,
}, async () => {
  const out = await demo([]);
  expectScenario(out);
  expect(out.stdout).toContain('static discovery');
  // The test setup's Redis is in MESHWORK_TEST_REDIS: travels share their plan counters through it.
  if (process.env.MESHWORK_TEST_REDIS) expect(out.stdout).toContain('shared through Redis');
});

test('the same scenario with --discovery=consul (the Consul double)', { timeout: 90_000 }, async () => {
  const out = await demo(['--discovery=consul']);
  expectScenario(out);
  expect(out.stdout).toContain('Consul discovery: every instance is registered');
});

test("--partner-mesh: flights in the partner's own mesh (its own CA), through its east-west gateway", {
  timeout: 90_000,
}, async () => {
  const out = await demo(['--partner-mesh']);
  expectScenario(out, { partnerMesh: true });
  expect(out.stdout).toContain("reach them through the partner's east-west gateway");
});
