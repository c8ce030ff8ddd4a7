import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMesh } from '../src/index.ts';
import { createPki, GATEWAY_ID, type Pki, TRAVELS_ID } from './support/certs.ts';

let pki: Pki;
beforeAll(() => {
  pki = createPki();
});
afterAll(() => pki.cleanup());

/** Replaces a file the way a secret manager does: write aside, then rename over. */
function replace(from: string, to: string): void {
  const tmp = `${to}.tmp`;
  copyFileSync(from, tmp);
  renameSync(tmp, to);
}

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('certificate rotation', () => {
  it('client certificate rotated under load: new connections use it, no request fails', async () => {
    const v1 = pki.issue('client-v1', [`URI:${GATEWAY_ID}`]);
    const v2 = pki.issue('client-v2', [`URI:${GATEWAY_ID}`]);
    const live = { cert: join(pki.dir, 'live-client.pem'), key: join(pki.dir, 'live-client.key') };
    copyFileSync(v1.certPath, live.cert);
    copyFileSync(v1.keyPath, live.key);
    const srv = pki.issue('travels-rot', [`URI:${TRAVELS_ID}`]);
    const seen = new Map<string, number>();
    let n = 0;
    const server = createServer(
      { cert: srv.cert, key: srv.key, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const fp = (req.socket as TLSSocket).getPeerCertificate().serialNumber;
        seen.set(fp, (seen.get(fp) ?? 0) + 1);
        // Close every 4th connection's keep-alive so new connections keep being made.
        if (++n % 4 === 0) res.setHeader('connection', 'close');
        setTimeout(() => res.end('ok'), 2);
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    const mesh = createMesh({
      services: {
        travels: {
          discovery: { static: [`127.0.0.1:${port}`] },
          trafficPolicy: {
            tls: {
              mode: 'MUTUAL',
              caCertificates: pki.caPath,
              clientCertificate: live.cert,
              privateKey: live.key,
              subjectAltNames: [TRAVELS_ID],
            },
          },
        },
      },
    });
    try {
      let ok = 0;
      const failures: unknown[] = [];
      let rotated = false;
      const worker = async () => {
        // Bounded: stop 150 requests after the rotation was taken (or at 3000 in total).
        let after = 0;
        for (let i = 0; i < 3000 && after < 150; i++) {
          try {
            const res = await mesh.fetch('http://travels/load', { method: 'POST', body: 'x' });
            await res.text();
            if (res.status === 200) ok++;
            else failures.push(res.status);
          } catch (err) {
            failures.push(err);
          }
          if (rotated) after++;
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, worker));
      await until(() => ok > 100);
      // The cert lands first and the key second: the half-written pair is refused, not used.
      replace(v2.certPath, live.cert);
      await sleep(150);
      replace(v2.keyPath, live.key);
      await until(() => mesh.snapshot().services.travels?.tls?.rotations === 1);
      rotated = true;
      await load;
      expect(failures).toEqual([]);
      const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;
      expect(seen.get(serialOf(v1.cert))).toBeGreaterThan(0);
      expect(seen.get(serialOf(v2.cert))).toBeGreaterThan(0);
    } finally {
      await mesh.close();
      server.closeAllConnections();
      server.close();
    }
  });

  it('server certificate rotated with watchServerTls: new handshakes present the new one', async () => {
    const a = pki.issue('srv-a', [`URI:${TRAVELS_ID}`]);
    const b = pki.issue('srv-b', [`URI:${TRAVELS_ID}`]);
    const live = { cert: join(pki.dir, 'live-srv.pem'), key: join(pki.dir, 'live-srv.key') };
    copyFileSync(a.certPath, live.cert);
    copyFileSync(a.keyPath, live.key);
    const serverMesh = createMesh({
      services: {},
      identity: { cert: live.cert, key: live.key, ca: pki.caPath },
    });
    const served: string[] = [];
    const server = createServer(serverMesh.serverTlsOptions(), (req, res) => {
      served.push(
        ((req.socket as TLSSocket).getCertificate() as { serialNumber?: string } | null)?.serialNumber ?? '?',
      );
      res.setHeader('connection', 'close');
      res.end('ok');
    });
    serverMesh.watchServerTls(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const c = pki.issue('client-srvrot', [`URI:${GATEWAY_ID}`]);
    const mesh = createMesh({
      services: {
        travels: {
          discovery: { static: [`127.0.0.1:${(server.address() as AddressInfo).port}`] },
          trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL', subjectAltNames: [TRAVELS_ID] } },
        },
      },
      identity: { cert: c.cert, key: c.key, ca: pki.ca },
    });
    try {
      await (await mesh.fetch('http://travels/')).text();
      replace(b.keyPath, live.key);
      replace(b.certPath, live.cert);
      await until(() => serverMesh.snapshot().identity?.rotations === 1);
      await (await mesh.fetch('http://travels/')).text();
      expect(served).toEqual([
        new X509Certificate(a.cert).serialNumber,
        new X509Certificate(b.cert).serialNumber,
      ]);
    } finally {
      await mesh.close();
      await serverMesh.close();
      server.closeAllConnections();
      server.close();
    }
  });
});
