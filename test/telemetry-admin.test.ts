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

let up: TestServer[] = [];
let mesh: Mesh;
let mini: MiniMesh;
let admin: Server;
let base: string;

async function listen(handler: RequestListener): Promise<Server> {
  const s = createServer(handler);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

beforeAll(async () => {
  up = await Promise.all(['a', 'b', 'c', 'd'].map((n) => startServer(named(n))));
  mesh = createMesh({
    env: {},
    zone: 'eu-west-1a',
    services: {
      travels: {
        discovery: {
          static: [
            { address: up[0]!.address, zone: 'eu-west-1a', labels: { version: 'v1' } },
            { address: up[1]!.address, zone: 'eu-west-1b', labels: { version: 'v2' }, weight: 2 },
          ],
        },
      },
      bookings: { discovery: { static: [up[2]!.address] } },
    },
  });
  for (let i = 0; i < 20; i++) await (await mesh.fetch('http://travels/')).text();
  // A second service with every endpoint state, for the screenshot: driven through the same
  // objects outlier detection / health checks / discovery will drive.
  mini = miniMesh(
    'payments',
    up.map((u) => u.address),
  );
  const eps = [...mini.svc.endpoints.endpoints()];
  eps[1]!.ejectedUntil = performance.now() + 25_000;
  mini.svc.telemetry.ejection({ endpoint: eps[1]!.address, reason: 'consecutive-5xx', durationMs: 25_000 });
  eps[2]!.healthy = false;
  eps[3]!.draining = true;
  eps[0]!.inflight = 3;
  mini.svc.telemetry.circuitBreaker({ state: 'half_open' });
  mini.svc.endpoints.error(new Error('consul: connect ECONNREFUSED 127.0.0.1:8500'));
  const meshAdmin = mesh.adminHandler();
  const richAdmin = createAdminHandler((): MeshSnapshot => {
    const snap = mesh.snapshot();
    snap.services.payments = serviceSnapshot(mini.svc, performance.now());
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
  await Promise.all(up.map((u) => u.close()));
});

describe('mesh.adminHandler() over HTTP', () => {
  it('serves /snapshot as JSON, no-store', async () => {
    const res = await request(`${base}/snapshot`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    const snap = (await res.body.json()) as MeshSnapshot;
    expect(Object.keys(snap.services).sort()).toEqual(['bookings', 'travels']);
    expect(snap.services.travels!.endpoints.map((e) => e.address)).toEqual([up[0]!.address, up[1]!.address]);
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
  it('renders services, endpoints with state badges, EWMA bars, in-flight and discovery status', {
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

      // The real mesh's page.
      await page.goto(`${base}/`, { timeout: 20_000 });
      await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
      expect(await page.locator('section[data-service]').count()).toBe(2);
      for (const u of up.slice(0, 3))
        expect(await page.locator(`tr[data-endpoint="${u.address}"]`).count()).toBe(1);
      const travels = page.locator('section[data-service="travels"]');
      expect(await travels.locator('.badge.healthy').count()).toBe(2);
      expect(await travels.textContent()).toContain('discovery ready');
      expect(await travels.textContent()).toContain('version=v2');
      expect(await travels.locator('.bar > span').count()).toBe(2);
      expect(await page.locator('#zone').textContent()).toBe('zone eu-west-1a');
      const config = (await page.locator('section[data-config]').textContent()) ?? '';
      expect(config).toContain('version 1');
      expect(config).toContain('source createMesh');

      // Every state, for the screenshot.
      await page.goto(`${base}/rich/`, { timeout: 20_000 });
      await page.waitForSelector('section[data-service="payments"]', { timeout: 20_000 });
      const pay = page.locator('section[data-service="payments"]');
      for (const state of ['healthy', 'ejected', 'unhealthy', 'draining'])
        expect(await pay.locator(`td .badge.${state}`).count()).toBe(1);
      const text = (await pay.textContent()) ?? '';
      expect(text).toContain('discovery degraded');
      expect(text).toContain('consul: connect ECONNREFUSED');
      expect(text).toContain('half_open');
      expect(text).toContain('1 (consecutive-5xx)');
      const inflight = await pay.locator(`tr[data-endpoint="${up[0]!.address}"] td.num`).nth(1).textContent();
      expect(inflight).toBe('3');
      expect(consoleErrors).toEqual([]);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'admin.png'), fullPage: true });
      expect(existsSync(join(ARTIFACTS, 'admin.png'))).toBe(true);
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
