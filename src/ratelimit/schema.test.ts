import { describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.ts';
import { MeshworkConfigError } from '../errors.ts';

function issues(config: unknown): string[] {
  try {
    validateConfig(config);
  } catch (err) {
    if (err instanceof MeshworkConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

const policy = (extra: object = {}) => ({
  name: 'p',
  key: { header: 'x-app' },
  limits: [{ requests: 10, per: '1s' }],
  ...extra,
});

describe('rateLimits config', () => {
  it('accepts a full block', () => {
    expect(
      issues({
        context: { headers: ['x-gateway-app', 'x-gateway-plan'] },
        rateLimits: {
          domain: 'travels',
          store: {
            redis: 'redis://127.0.0.1:6379',
            mode: 'lease',
            onFailure: 'local',
            timeout: '10ms',
            replicas: 4,
          },
          match: [{ uri: { prefix: '/api/' } }],
          policies: [
            policy({
              key: [{ context: 'x-gateway-app' }, { principal: true }],
              shadow: true,
              missingKey: 'shared',
            }),
          ],
          plans: {
            partner: {
              limits: {
                hits: [
                  { requests: 100, per: '1s', burst: 20 },
                  { requests: 1e6, per: 'month' },
                ],
              },
            },
          },
          applications: { acme: { plan: 'partner', userKeys: ['k-0123456789'], appKeys: ['s-0123456789'] } },
          credentials: [
            { context: { app: 'x-gateway-app', plan: 'x-gateway-plan' } },
            { userKey: { query: 'user_key' } },
            { appId: { header: 'app-id' }, appKey: { header: 'app-key' } },
            { jwt: { app: 'azp' } },
          ],
          jwt: { jwksUri: 'https://idp.example/certs', issuer: 'https://idp.example' },
          mappingRules: [{ method: 'get', pattern: '/trips/{id}', metric: 'hits', delta: 1 }],
          answers: { overLimit: { status: 429, message: 'slow down' } },
          headers: { legacy: true },
        },
        services: {
          partner: { discovery: { static: ['10.0.0.1:80'] }, rateLimits: { policies: [policy()] } },
        },
      }),
    ).toEqual([]);
  });

  it('names the path and the value of each problem', () => {
    expect(issues({ rateLimits: { policies: [policy({ limits: [{ requests: 0, per: '2s' }] })] } })).toEqual([
      'rateLimits.policies[0].limits[0].requests: 0 must be > 0',
      'rateLimits.policies[0].limits[0].per: "2s" is not one of 1s, 1m, 1h, 1d, month',
    ]);
    expect(issues({ rateLimits: { policies: [policy({ key: { header: 'x', claim: 'sub' } })] } })).toContain(
      'rateLimits.policies[0].key: sets header and claim: a key part names one thing (list several parts for a composite key)',
    );
    expect(issues({ rateLimits: { policies: [policy({ name: 'has space' })] } })[0]).toMatch(
      /^rateLimits\.policies\[0\]\.name: "has space" is not a valid policy name/,
    );
    expect(issues({ rateLimits: { store: { redis: 'redis://x:1' } } })).toEqual([
      'rateLimits.domain: is required with store.redis: meshes with the same domain share their counters (name it after the service or the API)',
    ]);
    expect(issues({ rateLimits: { store: { mode: 'exact' } } })).toEqual([
      'rateLimits.store.mode: "exact" needs store.redis (without a store, counting is in-process)',
    ]);
    expect(issues({ rateLimits: { policies: [policy({ key: { context: 'x-app' } })] } })).toEqual([
      'rateLimits.policies[0].key.context: "x-app" is not one of context.headers: the gateway context would never hold it',
    ]);
    expect(
      issues({ rateLimits: { policies: [policy({ limits: [{ requests: 5, per: '1d', burst: 2 }] })] } }),
    ).toEqual([
      'rateLimits.policies[0].limits[0].burst: 2 applies to "1s" and "1m" limits only ("1d" is a calendar quota: all of it may be used at once)',
    ]);
  });

  it('plans, applications and credentials must agree', () => {
    expect(
      issues({
        rateLimits: {
          plans: { basic: {} },
          applications: {
            acme: { plan: 'gold', userKeys: ['k-0123456789'] },
            globex: { plan: 'basic', userKeys: ['k-0123456789'] },
          },
          credentials: [{ userKey: { header: 'user-key' } }, { jwt: {} }],
        },
      }),
    ).toEqual([
      'rateLimits.applications.acme.plan: "gold" is not one of the plans',
      'rateLimits.applications.globex.userKeys[0]: is also a user key of "acme"',
      'rateLimits.jwt: is required by a jwt credential or a claim key: how tokens are verified',
    ]);
    expect(issues({ rateLimits: { plans: { basic: {} } } })).toEqual([
      'rateLimits.credentials: is required with plans: say where the application is found',
    ]);
    expect(issues({ rateLimits: { credentials: [{ appId: { header: 'a' } }] } })).toContain(
      'rateLimits.credentials[0]: appId and appKey go together',
    );
  });

  it('never shows a key or a secret in an error', () => {
    const out = issues({
      rateLimits: {
        plans: { basic: {} },
        applications: { acme: { plan: 'basic', userKeys: ['short'], appKeys: ['tiny'] } },
        credentials: [{ userKey: { header: 'user-key' } }],
        jwt: { hmacSecret: 'too-short' },
      },
    }).join('\n');
    expect(out).not.toContain('short');
    expect(out).not.toContain('tiny');
    expect(out).not.toContain('too-short');
    expect(out).toContain(
      'rateLimits.applications.acme.userKeys[0]: (value not shown) must be >= 8 in length',
    );
  });

  it('refuses __proto__ as a plan or application name', () => {
    expect(issues(JSON.parse('{"rateLimits":{"plans":{"__proto__":{}}}}'))[0]).toMatch(/__proto__/);
  });
});
