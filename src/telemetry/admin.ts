/**
 * `mesh.adminHandler()`: a node:http handler, like Envoy's admin page in miniature.
 *   GET <mount>/          the HTML page (inline CSS/JS, no external asset) that polls ./snapshot
 *   GET <mount>/snapshot  mesh.snapshot() as JSON
 * It works mounted anywhere (`http.createServer(h)`, `app.use('/mesh', h)`): it only looks at
 * the last path segment. Read-only; GET and HEAD only. Serve it on an internal port.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ADMIN_SCRIPT, adminPage } from './admin-page.ts';
import type { MeshSnapshot } from './snapshot.ts';
import { enableStats } from './stats.ts';

export type AdminHandler = (req: IncomingMessage, res: ServerResponse) => void;

const SCRIPT_HASH = createHash('sha256').update(ADMIN_SCRIPT).digest('base64');
const CSP = [
  "default-src 'none'",
  `script-src 'sha256-${SCRIPT_HASH}'`,
  "style-src 'unsafe-inline'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'none'",
].join('; ');

export function createAdminHandler(snapshot: () => MeshSnapshot): AdminHandler {
  // From now on, the telemetry layer keeps the last minute the page shows (rates, p50/p99,
  // observed route splits): O(1) per request, nothing before an admin handler exists.
  enableStats();
  const page = Buffer.from(adminPage());
  return (req, res) => {
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return;
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const last = path.slice(path.lastIndexOf('/') + 1);
    const common = {
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    if (last === 'snapshot' || last === 'snapshot.json') {
      let body: Buffer;
      try {
        body = Buffer.from(`${JSON.stringify(snapshot(), null, 2)}\n`);
      } catch (err) {
        res.writeHead(500, { ...common, 'content-type': 'text/plain; charset=utf-8' });
        res.end(`snapshot failed: ${(err as Error).message}\n`);
        return;
      }
      res.writeHead(200, {
        ...common,
        'content-type': 'application/json; charset=utf-8',
        'content-length': body.length,
      });
      res.end(method === 'HEAD' ? undefined : body);
      return;
    }
    if (last === '' || last === 'index.html') {
      res.writeHead(200, {
        ...common,
        'content-type': 'text/html; charset=utf-8',
        'content-length': page.length,
        'content-security-policy': CSP,
        'x-frame-options': 'DENY',
      });
      res.end(method === 'HEAD' ? undefined : page);
      return;
    }
    res.writeHead(404, { ...common, 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found: the admin handler serves / and /snapshot\n');
  };
}
