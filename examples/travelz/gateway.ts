// The API gateway (stands in for 3scale / API Connect / Kong) in its own process.
// It takes the partner's `user_key` (query or header), maps it to an application and a plan,
// starts a W3C trace, signs the context (compact JWS, HS256, secret shared through the demo config)
// and calls the portal through its own mesh.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { signJws } from '../../src/index.ts';
import { json, runNode } from './node.ts';

const KEYS: Record<string, { app: string; plan: string }> = {
  'k-acme-7f3a': { app: 'acme-travel', plan: 'partner' },
  'k-globex-9b1d': { app: 'globex', plan: 'partner-trial' },
  'k-intranet-21c9': { app: 'intranet', plan: 'internal' },
};

const config = JSON.parse(readFileSync(process.env.MESHWORK_CONFIG ?? '', 'utf8')) as {
  context: { trust: { signature: { hmacSecret: string } } };
};
const secret = config.context.trust.signature.hmacSecret;

runNode('gateway', 'v1', async (req, res, mesh) => {
  const url = new URL(req.url ?? '/', 'http://gateway');
  const key = url.searchParams.get('user_key') ?? req.headers['user-key'];
  const client = typeof key === 'string' ? KEYS[key] : undefined;
  if (!client) {
    json(res, 403, { error: 'unknown user_key' });
    return;
  }
  url.searchParams.delete('user_key');
  const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
  const token = await signJws(
    {
      'x-gateway-app': client.app,
      'x-gateway-plan': client.plan,
      exp: Math.floor(Date.now() / 1000) + 60,
    },
    'HS256',
    secret,
  );
  const r = await mesh.fetch(`http://portal${url.pathname}${url.search}`, {
    headers: {
      traceparent,
      'x-meshwork-context-token': token,
      'x-gateway-app': client.app,
      'x-gateway-plan': client.plan,
    },
  });
  // A refusal for the partner's plan (429) comes back with its Retry-After and RateLimit headers.
  for (const h of ['retry-after', 'ratelimit', 'ratelimit-policy']) {
    const v = r.headers.get(h);
    if (v !== null) res.setHeader(h, v);
  }
  json(res, r.status, { ...client, traceparent, portal: await r.json() });
});
