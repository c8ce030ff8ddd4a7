import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh, type Mesh } from '../src/index.ts';
import { createAdminHandler } from '../src/telemetry/admin.ts';
import { type MeshSnapshot, serviceSnapshot } from '../src/telemetry/snapshot.ts';
import { type MiniMesh, miniMesh } from './support/mini-mesh.ts';
import { named, startServer, type TestServer } from './support/servers.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
const DOCS_SCREENSHOT = fileURLToPath(new URL('../docs/admin-page.png', import.meta.url));

let up: TestServer[] = [];
let mesh: Mesh;
let mini: MiniMesh;
let admin: Server;
let base: string;
/** Named servers: a, b (travels v1, v2), c (bookings), d (payments) answer; the 503 ones never do. */
let broken: TestServer;
let broken2: TestServer;

async function listen(handler: RequestListener): Promise<Server> {
  const s = createServer(handler);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

const fail503: RequestListener = (_req, res) => {
  res.statusCode = 503;
  res.end('unavailable');
};

beforeAll(async () => {
  up = await Promise.all(['a', 'b', 'c', 'd'].map((n) => startServer(named(n))));
  broken = await startServer(fail503);
  broken2 = await startServer(fail503);
  mesh = createMesh({
    env: {},
    zone: 'eu-west-1a',
    services: {
      // A weighted split, to compare with what was observed.
      travels: {
        discovery: {
          static: [
            { address: up[0]!.address, zone: 'eu-west-1a', labels: { version: 'v1' } },
            { address: up[1]!.address, zone: 'eu-west-1b', labels: { version: 'v2' }, weight: 2 },
          ],
        },
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' } },
        ],
        http: [
          {
            name: 'canary',
            route: [
              { destination: { subset: 'v1' }, weight: 80 },
              { destination: { subset: 'v2' }, weight: 20 },
            ],
          },
        ],
      },
      // One endpoint answers 503 to everything; outlier detection is off, so nothing ejects it:
      // discovery calls it healthy, its attempts say otherwise. Retries hide it from callers.
      bookings: {
        discovery: { static: [up[2]!.address, broken.address] },
        trafficPolicy: {
          loadBalancer: { simple: 'ROUND_ROBIN' },
          outlierDetection: { enabled: false },
          circuitBreaker: { volumeThreshold: 1_000 },
        },
      },
      // Outlier detection ejects the failing endpoint after three 5xx in a row.
      payments: {
        discovery: { static: [up[3]!.address, broken2.address] },
        trafficPolicy: {
          loadBalancer: { simple: 'ROUND_ROBIN' },
          outlierDetection: { consecutive5xxErrors: 3, maxEjectionPercent: 50 },
        },
      },
    },
  });
  // The admin handler first: the last minute is kept from then on.
  const meshAdmin = mesh.adminHandler();
  for (let i = 0; i < 100; i++) await (await mesh.fetch('http://travels/')).text();
  for (let i = 0; i < 20; i++) await (await mesh.fetch('http://bookings/')).text();
  for (let i = 0; i < 20; i++) await (await mesh.fetch('http://payments/')).text();

  // A service with every endpoint state, driven through the same objects outlier detection,
  // health checks and discovery drive.
  mini = miniMesh(
    'inventory',
    up.map((u) => u.address),
  );
  const eps = [...mini.svc.endpoints.endpoints()];
  eps[1]!.ejectedUntil = performance.now() + 25_000;
  mini.svc.telemetry.ejection({
    endpoint: eps[1]!.address,
    reason: 'consecutiveGatewayErrors',
    durationMs: 25_000,
  });
  eps[2]!.healthy = false;
  eps[3]!.draining = true;
  eps[0]!.inflight = 3;
  mini.svc.telemetry.circuitBreaker({ state: 'half_open' });
  mini.svc.endpoints.error(new Error('consul: connect ECONNREFUSED 127.0.0.1:8500'));
  const richAdmin = createAdminHandler((): MeshSnapshot => {
    const snap = mesh.snapshot();
    snap.services.inventory = serviceSnapshot(mini.svc, performance.now());
    snap.services.inventory.circuitBreaker = { state: 'half_open', rejected: 12, pending: 1 };
    return snap;
  });
  admin = await listen((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/rich/')) {
      req.url = url.slice('/rich'.length);
      richAdmin(req, res);
    } else meshAdmin(req, res);
  });
  base = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
});

afterAll(async () => {
  admin?.closeAllConnections();
  await new Promise((r) => admin?.close(r));
  await mesh?.close();
  await mini?.close();
  await Promise.all([...up, broken, broken2].map((u) => u?.close()));
});

describe('mesh.adminHandler() over HTTP', () => {
  it('serves /snapshot as JSON, no-store', async () => {
    const res = await request(`${base}/snapshot`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    const snap = (await res.body.json()) as MeshSnapshot;
    expect(Object.keys(snap.services).sort()).toEqual(['bookings', 'payments', 'travels']);
    expect(snap.services.travels!.endpoints.map((e) => e.address)).toEqual([up[0]!.address, up[1]!.address]);
  });

  it('has the last minute: per service (rate, success, retries, p50, p99), per endpoint, and each route’s observed split', async () => {
    const snap = (await (await request(`${base}/snapshot`)).body.json()) as MeshSnapshot;
    const travels = snap.services.travels!;
    expect(travels.lastMinute).toMatchObject({ requests: 100, failures: 0, successRate: 1, retries: 0 });
    expect(travels.lastMinute!.rps).toBeGreaterThan(0);
    expect(travels.lastMinute!.p50Ms).toBeGreaterThan(0);
    expect(travels.lastMinute!.p99Ms).toBeGreaterThanOrEqual(travels.lastMinute!.p50Ms!);
    const [v1, v2] = travels.routes![0]!.destinations!;
    expect([v1!.weight, v2!.weight]).toEqual([80, 20]);
    expect(v1!.observed! + v2!.observed!).toBe(100);
    expect(v1!.observed).toBeGreaterThan(60); // 80% of 100, give or take the draw
    const perEndpoint = travels.endpoints.map((e) => e.lastMinute?.requests);
    expect(perEndpoint).toEqual([v1!.observed, v2!.observed]);
    // bookings: the 503 endpoint failed every attempt; retries made every request succeed.
    const bookings = snap.services.bookings!;
    expect(bookings.lastMinute).toMatchObject({ requests: 20, successRate: 1 });
    expect(bookings.lastMinute!.retries).toBeGreaterThan(0);
    const bad = bookings.endpoints.find((e) => e.address === broken.address)!;
    expect(bad.state).toBe('healthy');
    expect(bad.lastMinute!.successRate).toBe(0);
    expect(bookings.circuitBreaker?.state).toBe('closed');
    // payments: ejected, with the counter that tripped.
    const ejected = snap.services.payments!.endpoints.find((e) => e.address === broken2.address)!;
    expect(ejected.state).toBe('ejected');
    expect(ejected.ejections?.lastReason).toBe('consecutive5xxErrors');
  });

  it('serves the page at / with a CSP that allows only its own script', async () => {
    const res = await request(`${base}/`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(String(res.headers['content-security-policy'])).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    const html = await res.body.text();
    expect(html).toContain('<title>meshwork admin</title>');
    expect(html).not.toMatch(/<(link|img|script)[^>]+(src|href)="(?!data:)/);
  });

  it('answers 404 for other paths and 405 for other methods', async () => {
    const nf = await request(`${base}/nope`);
    expect(nf.statusCode).toBe(404);
    await nf.body.dump();
    const post = await request(`${base}/snapshot`, { method: 'POST', body: '' });
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    await post.body.dump();
  });
});

// The global setup (test/setup/services.ts) installs Debian's chromium; no skip without it.
describe('the admin page in headless Chromium', () => {
  it('renders the last minute, routes’ weights beside the observed split, the breaker, health that recent attempts back up, ejection reasons', {
    timeout: 90_000,
  }, async () => {
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
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      const consoleErrors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') consoleErrors.push(m.text());
      });
      page.on('pageerror', (e) => consoleErrors.push(e.message));

      // The real mesh's page, after real traffic.
      await page.goto(`${base}/`, { timeout: 20_000 });
      await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
      expect(await page.locator('section[data-service]').count()).toBe(3);
      for (const u of up) expect(await page.locator(`tr[data-endpoint="${u.address}"]`).count()).toBe(1);
      expect(await page.locator('#zone').textContent()).toBe('zone eu-west-1a');
      const config = (await page.locator('section[data-config]').textContent()) ?? '';
      expect(config).toContain('version 1');
      expect(config).toContain('source createMesh');

      const travels = page.locator('section[data-service="travels"]');
      expect(await travels.locator('[data-health="healthy"]').count()).toBe(2);
      expect(await travels.textContent()).toContain('discovery ready');
      expect(await travels.textContent()).toContain('version=v2');
      // The breaker is always shown: here, none is configured.
      expect(await travels.locator('h2 .badge.none').textContent()).toBe('no breaker');
      // The last minute of the service.
      const minute = travels.locator('[data-section="last-minute"]');
      expect(await minute.locator('[data-k="success"]').textContent()).toBe('100%');
      expect(await minute.locator('[data-k="retries"]').textContent()).toBe('0');
      expect(await minute.locator('[data-k="rps"]').textContent()).toMatch(/\/s$/);
      expect(await minute.locator('[data-k="p99"]').textContent()).toMatch(/ms$/);
      // Configured weights next to the observed split.
      const canary = travels.locator('tr[data-route="canary"]');
      expect(await canary.count()).toBe(2);
      expect(await canary.nth(0).locator('[data-k="weight"]').textContent()).toBe('80%');
      expect(await canary.nth(1).locator('[data-k="weight"]').textContent()).toBe('20%');
      const snap = mesh.snapshot();
      const [v1, v2] = snap.services.travels!.routes![0]!.destinations!;
      expect(await canary.nth(0).locator('[data-k="observed"]').textContent()).toBe(
        `${v1!.observed}% (${v1!.observed})`,
      );
      expect(await canary.nth(1).locator('[data-k="observed"]').textContent()).toBe(
        `${v2!.observed}% (${v2!.observed})`,
      );

      // An endpoint that failed every recent attempt is not "healthy", whatever discovery says.
      const bookings = page.locator('section[data-service="bookings"]');
      const bad = bookings.locator(`tr[data-endpoint="${broken.address}"]`);
      expect(await bad.locator('[data-health]').getAttribute('data-health')).toBe('failing');
      expect(await bad.locator('td.num.err').first().textContent()).toBe('0%');
      expect(
        await bookings.locator(`tr[data-endpoint="${up[2]!.address}"] [data-health]`).textContent(),
      ).toBe('healthy');
      expect(await bookings.locator('[data-breaker]').textContent()).toBe('breaker closed');
      expect(
        Number(await bookings.locator('[data-section="last-minute"] [data-k="retries"]').textContent()),
      ).toBeGreaterThan(0);

      // An ejection names the counter that tripped.
      const payments = page.locator('section[data-service="payments"]');
      const ejected = payments.locator(`tr[data-endpoint="${broken2.address}"]`);
      expect(await ejected.locator('[data-health]').textContent()).toBe('ejected');
      expect(await ejected.locator('.ejections .reason').textContent()).toBe('consecutive5xxErrors');
      expect(consoleErrors).toEqual([]);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'admin-page.png'), fullPage: true });
      // `MESHWORK_UPDATE_DOCS_SCREENSHOT=1 npx vitest run test/telemetry-admin.test.ts` refreshes the docs' copy.
      if (process.env.MESHWORK_UPDATE_DOCS_SCREENSHOT === '1')
        await page.screenshot({ path: DOCS_SCREENSHOT, fullPage: true });
      expect(existsSync(DOCS_SCREENSHOT), 'docs/admin-page.png is referenced from docs/telemetry.md').toBe(
        true,
      );

      // Every endpoint state.
      await page.goto(`${base}/rich/`, { timeout: 20_000 });
      await page.waitForSelector('section[data-service="inventory"]', { timeout: 20_000 });
      const inv = page.locator('section[data-service="inventory"]');
      for (const state of ['healthy', 'ejected', 'unhealthy', 'draining'])
        expect(await inv.locator(`td .badge.${state}`).count()).toBe(1);
      const text = (await inv.textContent()) ?? '';
      expect(text).toContain('discovery degraded');
      expect(text).toContain('consul: connect ECONNREFUSED');
      expect(await inv.locator('[data-breaker]').textContent()).toBe('breaker half-open');
      expect(text).toContain('rejected by the breaker 12');
      expect(await inv.locator('.ejections .reason').textContent()).toBe('consecutiveGatewayErrors');
      const inflight = await inv.locator(`tr[data-endpoint="${up[0]!.address}"] td.num`).nth(1).textContent();
      expect(inflight).toBe('3');
      expect(consoleErrors).toEqual([]);
      await page.screenshot({ path: join(ARTIFACTS, 'admin-states.png'), fullPage: true });
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
