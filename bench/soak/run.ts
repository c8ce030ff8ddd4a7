/**
 * Soak: `npm run bench -- soak` (10 minutes; `--quick`: 1 minute; alone, `node bench/soak/run.ts
 * --minutes 3` for another length, the warm-up staying a tenth of it). Steady closed-loop load
 * (concurrency 16) through the default stack over mTLS (ISTIO_MUTUAL) to six upstreams, with:
 *   - one flaky replica (10% 503, 2% connections reset mid-answer);
 *   - endpoint churn: file discovery, every 2 s one of the five steady replicas replaced by a new
 *     upstream on a new loopback address (127.1.x.y), the old one stopped 5 s later;
 *   - a certificate rotation of the mesh identity (the watched files rewritten) halfway through.
 * Reports the heap slope after warm-up (KB/min, least squares over samples taken after a full GC),
 * the request outcomes, and the counters once the load stops (snapshotProblems, all back to zero).
 * Target: no heap growth after warm-up; every counter back to zero.
 */
import { once } from 'node:events';
import { renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { request } from 'undici';
import { createMesh, snapshotProblems } from '../../src/index.ts';
import { createPki } from '../../test/support/certs.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const quick = process.argv.includes('--quick');
const minutesArg = process.argv.indexOf('--minutes');
const minutes = minutesArg >= 0 ? Number(process.argv[minutesArg + 1]) : quick ? 1 : 10;
if (!(minutes > 0 && minutes <= 120)) {
  throw new Error(`--minutes: expected a number of minutes in (0, 120], got ${process.argv[minutesArg + 1]}`);
}
const DURATION_MS = minutes * 60_000;
const WARMUP_MS = quick ? 15_000 : DURATION_MS / 10;
const SAMPLE_MS = quick ? 5_000 : Math.min(15_000, DURATION_MS / 40);
const CONCURRENCY = 16;
const ID = 'spiffe://cluster.local/ns/default/sa/soak';

const pki = createPki('meshwork-soak-ca');
const serverCert = pki.issue('upstream', [`URI:${ID}`, 'DNS:localhost']);
const first = pki.issue('client-1', [`URI:${ID}`]);
const identityCert = join(pki.dir, 'identity.pem');
const identityKey = join(pki.dir, 'identity.key');
const writeAtomically = (path: string, text: string) => {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
};
writeAtomically(identityCert, first.cert);
writeAtomically(identityKey, first.key);

/** A fresh loopback address for every upstream (127.1.x.y), so churn brings new endpoint names. */
let serial = 0;
const nextHost = () => {
  const i = serial++;
  return `127.1.${Math.floor(i / 250) % 250}.${(i % 250) + 2}`;
};

async function upstream(flaky: boolean): Promise<{ server: Server; address: string }> {
  const server = createServer(
    { cert: serverCert.cert, key: serverCert.key, ca: pki.ca, requestCert: true, keepAliveTimeout: 30_000 },
    (req, res) => {
      req.resume();
      const r = flaky ? Math.random() : 1;
      if (r < 0.02) {
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial');
        res.socket?.destroy();
        return;
      }
      if (r < 0.12) {
        res.statusCode = 503;
        res.end('flaky');
        return;
      }
      res.end('ok');
    },
  );
  const host = nextHost();
  server.listen(0, host);
  await once(server, 'listening');
  return { server, address: `${host}:${(server.address() as AddressInfo).port}` };
}

type Upstream = Awaited<ReturnType<typeof upstream>>;
// The flaky replica stays; the five others are replaced one at a time by new upstreams on new
// addresses (a rolling fleet: every replacement is an endpoint name the mesh never saw).
const active: Upstream[] = await Promise.all(
  [true, false, false, false, false, false].map((f) => upstream(f)),
);
const retired = new Set<Upstream>();
const endpointsFile = join(pki.dir, 'endpoints.json');
const writeEndpoints = () => writeAtomically(endpointsFile, JSON.stringify(active.map((u) => u.address)));
writeEndpoints();
const CHURN_MS = 2_000;
let replaced = 0;

const mesh = createMesh({
  identity: { cert: identityCert, key: identityKey, ca: pki.caPath },
  services: {
    svc: {
      discovery: { file: { path: endpointsFile } },
      retries: { attempts: 2, retryOn: '5xx,reset,connect-failure' },
      trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL', subjectAltNames: [ID] } },
    },
  },
});

let ok = 0;
let failed = 0;
const failures = new Map<string, number>();
let stop = false;
const worker = async () => {
  while (!stop) {
    try {
      const res = await request('http://svc/x', { dispatcher: mesh.dispatcher });
      await res.body.text();
      if (res.statusCode < 500) ok++;
      else {
        failed++;
        failures.set(String(res.statusCode), (failures.get(String(res.statusCode)) ?? 0) + 1);
      }
    } catch (err) {
      failed++;
      const code = String((err as { code?: string }).code ?? (err as Error).name);
      failures.set(code, (failures.get(code) ?? 0) + 1);
    }
  }
};

const started = performance.now();
const workers = Array.from({ length: CONCURRENCY }, worker);
let churning = false;
const churn = setInterval(async () => {
  if (churning) return;
  churning = true;
  const i = 1 + Math.floor(Math.random() * (active.length - 1));
  const out = active[i] as Upstream;
  active[i] = await upstream(false);
  writeEndpoints();
  replaced++;
  // The old replica goes away a little later, as a terminating pod does after its endpoint is
  // removed (the mesh drains it first).
  retired.add(out);
  setTimeout(() => {
    out.server.close();
    out.server.closeAllConnections();
    retired.delete(out);
  }, 5_000).unref();
  churning = false;
}, CHURN_MS);
let rotated = false;
const samples: { minutes: number; heapKB: number }[] = [];
while (performance.now() - started < DURATION_MS) {
  await new Promise((r) => setTimeout(r, SAMPLE_MS));
  const elapsed = performance.now() - started;
  if (!rotated && elapsed >= DURATION_MS / 2) {
    const next = pki.issue('client-2', [`URI:${ID}`]);
    writeAtomically(identityKey, next.key);
    writeAtomically(identityCert, next.cert);
    rotated = true;
  }
  gc();
  const heapKB = process.memoryUsage().heapUsed / 1024;
  if (elapsed >= WARMUP_MS) samples.push({ minutes: elapsed / 60_000, heapKB });
}
stop = true;
clearInterval(churn);
await Promise.all(workers);

// Counters once the load stopped: everything back to zero (bounded wait for drains).
let problems = snapshotProblems(mesh.snapshot(), { idle: true });
for (let i = 0; i < 50 && problems.length > 0; i++) {
  await new Promise((r) => setTimeout(r, 100));
  problems = snapshotProblems(mesh.snapshot(), { idle: true });
}
const snap = mesh.snapshot();
const svc = snap.services.svc;

// Least-squares slope of heap over time after warm-up.
const n = samples.length;
const mx = samples.reduce((a, s) => a + s.minutes, 0) / n;
const my = samples.reduce((a, s) => a + s.heapKB, 0) / n;
const slope =
  samples.reduce((a, s) => a + (s.minutes - mx) * (s.heapKB - my), 0) /
  samples.reduce((a, s) => a + (s.minutes - mx) ** 2, 0);

const total = ok + failed;
console.log(
  `soak: ${(DURATION_MS / 60_000).toFixed(1)} min, concurrency ${CONCURRENCY}, mTLS, 1 flaky of 6, one replica replaced by a new address every ${CHURN_MS / 1000} s (${replaced} in all), 1 rotation`,
);
console.log(
  `  requests ${total} (${((total / DURATION_MS) * 1000).toFixed(0)}/s), ok ${((ok / total) * 100).toFixed(3)}%, failed ${failed} ${JSON.stringify(Object.fromEntries(failures))}`,
);
console.log(
  `  heap after warm-up: ${samples[0]?.heapKB.toFixed(0)} -> ${samples[n - 1]?.heapKB.toFixed(0)} KB over ${n} samples, slope ${slope.toFixed(1)} KB/min (target: no growth)`,
);
console.log(
  `  identity rotations ${snap.identity?.rotations ?? 0}, discovery updates ${svc?.discovery.updates}, endpoints ${svc?.endpoints.length}`,
);
console.log(
  `  counters at the end: inflight ${svc?.inflight}, pool active ${svc?.connectionPool?.active}, requests active ${svc?.requests?.active}, problems ${problems.length === 0 ? 'none' : problems.join('; ')}`,
);
await mesh.close();
for (const u of [...active, ...retired]) {
  u.server.close();
  u.server.closeAllConnections();
}
pki.cleanup();
process.exit(problems.length === 0 ? 0 : 1);
