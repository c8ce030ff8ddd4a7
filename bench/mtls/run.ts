// bench/mtls: what mTLS costs. One upstream process with a plain and an mTLS listener on
// loopback; a plaintext mesh and a MUTUAL mesh (SPIFFE SAN check) in this process.
//  - steady state: keep-alive connections, closed-loop load at concurrency 1/16/64;
//  - new connection: every response says `connection: close`, so each request pays a
//    TCP (+ TLS) handshake; the difference per request is the cost of a new mTLS connection.
// Interleaved rounds, medians. Bounded: every loop stops at its deadline.
// `node bench/mtls/run.ts [--quick]`.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createSecureContext, connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { createMesh, type Mesh } from '../../src/index.ts';
import { createPki } from '../../test/support/certs.ts';

interface Result {
  system: string;
  scenario: string;
  concurrency: number;
  requests: number;
  errors: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

async function load(
  system: string,
  scenario: string,
  concurrency: number,
  seconds: number,
  fn: () => Promise<void>,
): Promise<Result> {
  const lat: number[] = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const s = performance.now();
        try {
          await fn();
          lat.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (p: number) =>
    Math.round((lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] ?? 0) * 1000) / 1000;
  return {
    system,
    scenario,
    concurrency,
    requests: lat.length,
    errors,
    rps: Math.round(lat.length / elapsed),
    p50Ms: pct(50),
    p99Ms: pct(99),
  };
}

function median(rs: Result[]): Result {
  const sorted = [...rs].sort((a, b) => a.rps - b.rps);
  return sorted[Math.floor(sorted.length / 2)] as Result;
}

async function startUpstream(args: string[]): Promise<{ http: number; https: number; child: ChildProcess }> {
  const script = fileURLToPath(new URL('./upstream.ts', import.meta.url));
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) return { ...(JSON.parse(line) as { http: number; https: number }), child };
  throw new Error('upstream exited before listening');
}

export async function mtls(opts: { quick: boolean }): Promise<{ results: Result[]; table: string }> {
  const seconds = opts.quick ? 1 : 3;
  const rounds = opts.quick ? 2 : 3;
  const pki = createPki('bench-ca');
  const server = pki.issue('bench-travels', ['URI:spiffe://cluster.local/ns/default/sa/travels']);
  const client = pki.issue('bench-client', ['URI:spiffe://cluster.local/ns/default/sa/bench']);
  const up = await startUpstream([server.certPath, server.keyPath, pki.caPath]);
  const meshes: Record<string, Mesh> = {
    plaintext: createMesh({
      env: {},
      services: { travels: { discovery: { static: [`127.0.0.1:${up.http}`] } } },
    }),
    mTLS: createMesh({
      env: {},
      services: {
        travels: {
          discovery: { static: [`127.0.0.1:${up.https}`] },
          trafficPolicy: {
            tls: {
              mode: 'MUTUAL',
              caCertificates: pki.caPath,
              clientCertificate: client.certPath,
              privateKey: client.keyPath,
              subjectAltNames: ['spiffe://cluster.local/ns/default/sa/travels'],
            },
          },
        },
      },
    }),
  };
  const call = (mesh: Mesh, path: string) => async () => {
    const r = await request(`http://travels${path}`, { dispatcher: mesh.dispatcher });
    await r.body.dump();
  };
  const all: Result[] = [];
  const scenarios: [string, string, number[]][] = [
    ['steady state (keep-alive)', '/', [1, 16, 64]],
    ['new connection per request', '/close', [1, 16]],
  ];
  for (const [scenario, path, concurrencies] of scenarios) {
    for (const c of concurrencies) {
      for (const [name, m] of Object.entries(meshes)) await load(name, scenario, c, 0.3, call(m, path));
      const by = new Map<string, Result[]>();
      for (let round = 0; round < rounds; round++) {
        const names = Object.keys(meshes);
        if (round % 2 === 1) names.reverse();
        for (const name of names) {
          const r = await load(name, scenario, c, seconds, call(meshes[name] as Mesh, path));
          by.set(name, [...(by.get(name) ?? []), r]);
        }
      }
      for (const name of Object.keys(meshes)) all.push(median(by.get(name) ?? []));
    }
  }
  const tlsSnap = meshes.mTLS?.snapshot().services.travels?.tls;
  const handshake = await handshakeCost(
    up.https,
    pki.caPath,
    client.certPath,
    client.keyPath,
    opts.quick ? 200 : 500,
  );
  await Promise.all(Object.values(meshes).map((m) => m.close()));
  up.child.kill('SIGTERM');
  pki.cleanup();
  return {
    results: all,
    table: `${table(all, tlsSnap?.handshakes ?? 0, tlsSnap?.resumed ?? 0)}\n${handshake}`,
  };
}

/** Bare mTLS handshakes to the upstream (no HTTP): full ones, and ones resuming a session. */
async function handshakeCost(
  port: number,
  ca: string,
  cert: string,
  key: string,
  n: number,
): Promise<string> {
  const secureContext = createSecureContext({
    ca: readFileSync(ca),
    cert: readFileSync(cert),
    key: readFileSync(key),
  });
  const once = (session?: Buffer) =>
    new Promise<{ ms: number; session: Buffer | undefined; reused: boolean }>((resolve, reject) => {
      const t0 = performance.now();
      let got: Buffer | undefined;
      const s = tlsConnect({
        host: '127.0.0.1',
        port,
        secureContext,
        servername: 'travels',
        checkServerIdentity: () => undefined,
        ...(session ? { session } : {}),
      });
      s.on('session', (b: Buffer) => {
        got = b;
      });
      s.once('secureConnect', () => {
        const ms = performance.now() - t0;
        const reused = s.isSessionReused();
        // Wait a tick for the TLS 1.3 ticket, then close.
        setTimeout(() => {
          s.destroy();
          resolve({ ms, session: got, reused });
        }, 1);
      });
      s.once('error', reject);
    });
  const full: number[] = [];
  const resumed: number[] = [];
  let session: Buffer | undefined;
  for (let i = 0; i < n; i++) {
    const f = await once();
    full.push(f.ms);
    session = f.session ?? session;
    const r = await once(session);
    if (r.reused) resumed.push(r.ms);
  }
  const p50 = (xs: number[]) => (xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0).toFixed(3);
  return `Bare mTLS handshake on loopback (TCP connect + TLS 1.3, ECDSA P-256, client cert), p50 of ${n}: full ${p50(full)} ms, resumed session ${p50(resumed)} ms (${resumed.length}/${n} resumed).`;
}

function table(rs: Result[], handshakes: number, resumed: number): string {
  const lines = [
    '| scenario | concurrency | system | req/s | p50 ms | p99 ms | errors | vs plaintext |',
    '|---|---:|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rs) {
    const base = rs.find(
      (b) => b.scenario === r.scenario && b.concurrency === r.concurrency && b.system === 'plaintext',
    );
    const ratio = base ? (r.rps / base.rps).toFixed(2) : '';
    lines.push(
      `| ${r.scenario} | ${r.concurrency} | ${r.system} | ${r.rps} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} | ${ratio}× |`,
    );
  }
  const c1 = rs.filter((r) => r.scenario.startsWith('new connection') && r.concurrency === 1);
  const plain = c1.find((r) => r.system === 'plaintext');
  const tls = c1.find((r) => r.system === 'mTLS');
  if (plain && tls) {
    lines.push(
      '',
      `New mTLS connection cost at concurrency 1: ${(tls.p50Ms - plain.p50Ms).toFixed(3)} ms more than a new plaintext ` +
        `connection (p50 ${tls.p50Ms} vs ${plain.p50Ms} ms per connect+request). TLS handshakes dialed: ${handshakes}, of which resumed sessions: ${resumed}.`,
    );
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table: t } = await mtls({ quick: process.argv.includes('--quick') });
  console.log(t);
}
