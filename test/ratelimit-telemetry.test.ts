// Rate-limit usage where operators look: mesh.snapshot(), the admin page (rendered in headless
// Chromium) and OpenTelemetry metrics (the real SDK).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataPoint } from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meshHandler } from '../src/context/adapters.ts';
import { createMesh, type Mesh } from '../src/index.ts';
import { listen } from './support/inbound.ts';
import { installOtel, type TestOtel } from './support/otel.ts';

const CHROMIUM = '/usr/bin/chromium';

let mesh: Mesh;
let otel: TestOtel;
let app: { url: string; close: () => Promise<void> };
let admin: { url: string; close: () => Promise<void> };

beforeAll(async () => {
  otel = installOtel({ traces: false });
  mesh = createMesh({
    rateLimits: {
      plans: {
        partner: { limits: { hits: [{ requests: 3, per: '1h' }] } },
        internal: {},
      },
      applications: {
        'acme-travel': { plan: 'partner', userKeys: ['k-acme-7f3a9c1e'] },
        intranet: { plan: 'internal', userKeys: ['k-intranet-21c9'] },
      },
      credentials: [{ userKey: { header: 'user-key' } }],
      policies: [
        { name: 'everyone', shadow: true, key: { header: 'user-key' }, limits: [{ requests: 2, per: '1h' }] },
      ],
    },
  });
  app = await listen(
    createServer(
      meshHandler(mesh, (_req, res) => {
        res.end('ok');
      }),
    ),
  );
  admin = await listen(createServer(mesh.adminHandler()));
  for (let i = 0; i < 5; i++)
    await (await fetch(app.url, { headers: { 'user-key': 'k-acme-7f3a9c1e' } })).text();
  for (let i = 0; i < 2; i++)
    await (await fetch(app.url, { headers: { 'user-key': 'k-intranet-21c9' } })).text();
});
afterAll(async () => {
  await app.close();
  await admin.close();
  await mesh.close();
  await otel.uninstall();
});

describe('rate-limit usage for operators', () => {
  it('mesh.snapshot(): store, policies and plan limits, refusals, usage per application', () => {
    const rl = mesh.snapshot().rateLimits;
    expect(rl?.store).toMatchObject({ kind: 'memory', state: 'memory', replicas: 1 });
    expect(rl?.policies).toEqual([
      expect.objectContaining({
        name: 'everyone',
        kind: 'policy',
        shadow: true,
        admitted: 4,
        shadowRefused: 3,
      }),
      expect.objectContaining({ name: 'partner.hits', kind: 'plan', admitted: 3, refused: 2 }),
    ]);
    expect(rl?.refusals).toEqual({
      inbound: {
        missingCredential: 0,
        invalidCredential: 0,
        overLimit: 2,
        noMatchingRule: 0,
        storeUnavailable: 0,
      },
    });
    const hits = rl?.usage
      .filter((u) => u.metric === 'hits')
      .map((u) => ({ ...u, used: { day: u.used.day } }));
    expect(hits).toEqual([
      {
        scope: 'inbound',
        application: 'acme-travel',
        plan: 'partner',
        metric: 'hits',
        used: { day: 3 },
        refused: 2,
      },
      {
        scope: 'inbound',
        application: 'intranet',
        plan: 'internal',
        metric: 'hits',
        used: { day: 2 },
        refused: 0,
      },
    ]);
  });

  it('OpenTelemetry: decisions per policy and usage per application and metric', async () => {
    const m = await otel.collect();
    const decisions = m.get('meshwork.ratelimit.decisions')?.dataPoints as DataPoint<number>[];
    const by = (policy: string, decision: string) =>
      decisions.find(
        (d) =>
          d.attributes['meshwork.ratelimit.policy'] === policy &&
          d.attributes['meshwork.ratelimit.decision'] === decision,
      )?.value;
    expect(by('partner.hits', 'allowed')).toBe(3);
    expect(by('partner.hits', 'refused')).toBe(2);
    expect(by('everyone', 'shadow_refused')).toBe(3);
    const usage = m.get('meshwork.ratelimit.usage')?.dataPoints as DataPoint<number>[];
    expect(
      usage.map((d) => [
        d.attributes['meshwork.ratelimit.application'],
        d.attributes['meshwork.ratelimit.metric'],
        d.value,
      ]),
    ).toEqual(
      expect.arrayContaining([
        ['acme-travel', 'hits', 3],
        ['intranet', 'hits', 2],
      ]),
    );
  });

  it('the admin page shows the store, the limits and the usage table', { timeout: 90_000 }, async () => {
    expect(
      existsSync(CHROMIUM),
      `${CHROMIUM} is missing: the test setup should have installed chromium`,
    ).toBe(true);
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(tmpdir(), 'meshwork-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 60_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${admin.url}/`, { timeout: 20_000 });
      await page.waitForSelector('section[data-ratelimits]', { timeout: 20_000 });
      const card = page.locator('section[data-ratelimits]');
      expect(await card.textContent()).toContain('rate limits');
      expect(await card.textContent()).toContain('inbound overLimit 2');
      const rows = await card.locator('table[data-usage] tbody tr').allTextContents();
      expect(rows.some((r) => r.includes('acme-travel') && r.includes('partner') && r.includes('hits'))).toBe(
        true,
      );
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
