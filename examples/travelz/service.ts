// One Travelz agency service in its own process: `node service.ts <name> <version> [--fail] [downstream...]`.
// It answers JSON about itself and what arrived with the request (trace and gateway context, put
// in req.headers by mesh.inbound() after verifying the gateway's signed token). With downstream
// services it calls them through its own mesh; it never copies a header by hand.
// `--fail` makes it a broken replica that always answers 503; `--slow` a replica that takes
// 300 ms on 30% of its answers (a GC pause, a cold cache: the slowness is real, not injected).
import { setTimeout as sleep } from 'node:timers/promises';
import { json, runNode } from './node.ts';

const args = process.argv.slice(2);
const fail = args.includes('--fail');
const slow = args.includes('--slow');
// --tls: served over mTLS with its mesh identity (the partner's own mesh, `--partner-mesh`).
const tls = args.includes('--tls');
const [name = 'svc', version = 'v1', ...downstream] = args.filter((a) => !a.startsWith('--'));

runNode(
  name,
  version,
  async (req, res, mesh) => {
    if (fail) {
      json(res, 503, { service: name, version, error: 'this replica is broken' });
      return;
    }
    if (slow && Math.random() < 0.3) await sleep(300);
    const calls: Record<string, unknown> = {};
    await Promise.all(
      downstream.map(async (d) => {
        const r = await mesh.fetch(`http://${d}${req.url ?? '/'}`);
        calls[d] = await r.json();
      }),
    );
    const port = (req.socket.localPort ?? 0).toString();
    json(res, 200, {
      service: name,
      version,
      replica: port,
      received: {
        traceparent: req.headers.traceparent,
        app: req.headers['x-gateway-app'],
        plan: req.headers['x-gateway-plan'],
        signedToken: typeof req.headers['x-meshwork-context-token'] === 'string',
        // The caller's SPIFFE ID, when it came over mTLS (verified by this process's mesh).
        peer: mesh.context()?.principal,
      },
      ...calls,
    });
  },
  { tls },
);
