/**
 * What the mesh config refuses at createMesh time, so that it never fails or spins at run time:
 * hostile names and keys, durations a timer cannot wait, zero values that break every request,
 * header and rewrite values that cannot be sent.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConfigIssue, isMeshworkError, type MeshworkConfigError } from '../errors.ts';
import { createMesh } from '../mesh.ts';
import { loadConfig, validateConfig } from './load.ts';

type Json = Record<string, unknown>;

const STATIC = { static: ['127.0.0.1:1'] };

/** The issues of a refused config (fails the test when the config is accepted). */
function issues(fn: () => unknown): ConfigIssue[] {
  try {
    fn();
  } catch (err) {
    expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG'), String(err)).toBe(true);
    return [...(err as MeshworkConfigError).issues];
  }
  throw new Error('expected a MeshworkConfigError');
}

const refused = (config: unknown) => issues(() => validateConfig(config));

/** A config with one service `a`, given extra fields. */
const svc = (fields: Json, discovery: Json = STATIC): Json => ({
  services: { a: { discovery, ...fields } },
});
const policy = (trafficPolicy: Json) => svc({ trafficPolicy });
const route = (fields: Json) => svc({ http: [{ route: [{ destination: { host: 'a' } }], ...fields }] });

const protoNames = () => ({
  object: Object.getOwnPropertyNames(Object.prototype).sort(),
  array: Object.getOwnPropertyNames(Array.prototype).sort(),
  fn: Object.getOwnPropertyNames(Function.prototype).sort(),
  objectFn: Object.getOwnPropertyNames(Object).sort(),
});
const before = protoNames();
afterEach(() => {
  expect(protoNames()).toEqual(before);
});

describe('hostile names and keys', () => {
  it.each([
    [
      'a service',
      '{"services":{"__proto__":{"discovery":{"static":["127.0.0.1:1"]}}}}',
      'services.__proto__',
    ],
    [
      'subset labels',
      '{"services":{"a":{"discovery":{"static":["127.0.0.1:1"]},"subsets":[{"name":"v1","labels":{"__proto__":"x"}}]}}}',
      'services.a.subsets[0].labels.__proto__',
    ],
    [
      'endpoint labels',
      '{"services":{"a":{"discovery":{"static":[{"address":"127.0.0.1:1","labels":{"__proto__":{"x":"y"}}}]}}}}',
      'services.a.discovery.static[0].labels.__proto__',
    ],
    [
      'a header to set',
      '{"services":{"a":{"discovery":{"static":["127.0.0.1:1"]},"http":[{"route":[{"destination":{"host":"a"}}],"headers":{"request":{"set":{"__proto__":"x"}}}}]}}}',
      'services.a.http[0].headers.request.set.__proto__',
    ],
    [
      'a header match',
      '{"services":{"a":{"discovery":{"static":["127.0.0.1:1"]},"http":[{"match":[{"headers":{"__proto__":{"exact":"x"}}}],"route":[{"destination":{"host":"a"}}]}]}}}',
      'services.a.http[0].match[0].headers.__proto__',
    ],
    ['the top level', '{"__proto__":{"zone":"x"}}', '__proto__'],
  ])('a "__proto__" key in %s is refused, naming its path (JSON.parse)', (_what, json, path) => {
    const found = refused(JSON.parse(json));
    expect(found.map((i) => i.path)).toContain(path);
    expect(found.find((i) => i.path === path)?.message).toMatch(/"__proto__" is a reserved name/);
  });

  it('createMesh refuses it too, and a config that is not an object', () => {
    const config = JSON.parse('{"services":{"__proto__":{"discovery":{"static":["127.0.0.1:1"]}}}}');
    expect(issues(() => createMesh({ env: {}, ...config })).map((i) => i.path)).toEqual([
      'services.__proto__',
    ]);
    for (const bad of [null, 42, 'services', []]) {
      const found = issues(() => createMesh(bad as never));
      expect(found).toHaveLength(1);
      expect(found[0]?.path).toBe('config');
    }
  });

  it('a MESHWORK_CONFIG file with a "__proto__" key is refused, naming its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshwork-'));
    const yaml = join(dir, 'mesh.yaml');
    writeFileSync(yaml, 'services:\n  __proto__:\n    discovery:\n      static: ["127.0.0.1:1"]\n');
    const json = join(dir, 'mesh.json');
    writeFileSync(
      json,
      '{"services":{"a":{"discovery":{"static":["127.0.0.1:1"]}}},"__proto__":{"zone":"x"}}',
    );
    expect(issues(() => loadConfig({}, { MESHWORK_CONFIG: yaml })).map((i) => i.path)).toEqual([
      'services.__proto__',
    ]);
    expect(issues(() => loadConfig({}, { MESHWORK_CONFIG: json })).map((i) => i.path)).toEqual(['__proto__']);
  });

  it('constructor, toString and hasOwnProperty are ordinary keys: kept as given, never inherited', () => {
    const config = validateConfig({
      services: {
        constructor: {
          discovery: { static: [{ address: '127.0.0.1:1', labels: { toString: 'x', constructor: 'y' } }] },
          subsets: [{ name: 'hasOwnProperty', labels: { hasOwnProperty: 'v1' } }],
        },
        a: {
          discovery: STATIC,
          http: [
            {
              headers: { request: { set: { constructor: 'c' }, add: { tostring: 't' } } },
              route: [{ destination: { host: 'constructor', subset: 'hasOwnProperty' } }],
            },
          ],
        },
      },
    });
    const name: string = 'constructor';
    expect(Object.keys(config.services)).toEqual(['constructor', 'a']);
    expect(config.services[name]?.subsets?.[0]?.labels).toEqual({ hasOwnProperty: 'v1' });
    expect(config.services.missing).toBeUndefined();
    expect(config.services.toString).toBeUndefined();
    expect(config.services.a?.http?.[0]?.headers?.request?.set).toEqual({ constructor: 'c' });
  });

  it('a route to a service named like an Object.prototype member must name a configured service', () => {
    const found = refused(svc({ http: [{ route: [{ destination: { host: 'constructor' } }] }] }));
    expect(found.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'services.a.http[0].route[0].destination.host: "constructor" is not a configured service (known: a)',
    ]);
  });
});

/** Every duration field of the config, with what it needs around it. */
const DURATIONS: [string, (v: unknown) => Json][] = [
  ['closeTimeout', (v) => ({ closeTimeout: v })],
  [
    'context.trust.signature.clockSkew',
    (v) => ({ context: { trust: { signature: { hmacSecret: 'x'.repeat(16), clockSkew: v } } } }),
  ],
  ['services.a.timeout', (v) => svc({ timeout: v })],
  ['services.a.retries.perTryTimeout', (v) => svc({ retries: { perTryTimeout: v } })],
  ['services.a.retries.retryAfterMax', (v) => svc({ retries: { retryAfterMax: v } })],
  ['services.a.retries.hedge.delay', (v) => svc({ retries: { hedge: { delay: v } } })],
  ['services.a.retryBudget.ttl', (v) => svc({ retryBudget: { ttl: v } })],
  ['…connectionPool.tcp.connectTimeout', (v) => policy({ connectionPool: { tcp: { connectTimeout: v } } })],
  ['…connectionPool.http.idleTimeout', (v) => policy({ connectionPool: { http: { idleTimeout: v } } })],
  ['…outlierDetection.interval', (v) => policy({ outlierDetection: { interval: v } })],
  ['…outlierDetection.baseEjectionTime', (v) => policy({ outlierDetection: { baseEjectionTime: v } })],
  ['…outlierDetection.maxEjectionTime', (v) => policy({ outlierDetection: { maxEjectionTime: v } })],
  ['…circuitBreaker.resetTimeout', (v) => policy({ circuitBreaker: { resetTimeout: v } })],
  ['…circuitBreaker.rollingCountTimeout', (v) => policy({ circuitBreaker: { rollingCountTimeout: v } })],
  ['…loadBalancer.warmupDurationSecs', (v) => policy({ loadBalancer: { warmupDurationSecs: v } })],
  ['…loadBalancer.warmup.duration', (v) => policy({ loadBalancer: { warmup: { duration: v } } })],
  [
    '…consistentHash.httpCookie.ttl',
    (v) => policy({ loadBalancer: { consistentHash: { httpCookie: { name: 'sid', ttl: v } } } }),
  ],
  ['…http[0].timeout', (v) => route({ timeout: v })],
  ['…http[0].retries.perTryTimeout', (v) => route({ retries: { perTryTimeout: v } })],
  [
    '…http[0].fault.delay.fixedDelay',
    (v) => route({ fault: { delay: { fixedDelay: v, percentage: { value: 1 } } } }),
  ],
  [
    '…http[0].chaos.latency.fixedDelay',
    (v) => route({ chaos: { latency: { fixedDelay: v, percentage: { value: 1 } } } }),
  ],
  ['…discovery.initialTimeout', (v) => svc({}, { ...STATIC, initialTimeout: v })],
  ['…discovery.drainTimeout', (v) => svc({}, { ...STATIC, drainTimeout: v })],
  ['…discovery.healthCheck.interval', (v) => svc({}, { ...STATIC, healthCheck: { interval: v } })],
  ['…discovery.healthCheck.timeout', (v) => svc({}, { ...STATIC, healthCheck: { timeout: v } })],
  ['…dns.minRefresh', (v) => svc({}, { dns: { host: 'x', port: 80, minRefresh: v } })],
  ['…dns.maxRefresh', (v) => svc({}, { dns: { host: 'x', port: 80, maxRefresh: v } })],
  ['…dns.timeout', (v) => svc({}, { dns: { host: 'x', port: 80, timeout: v } })],
  ['…consul.wait', (v) => svc({}, { consul: { wait: v } })],
  ['…consul.minInterval', (v) => svc({}, { consul: { minInterval: v } })],
  ['…consul.refreshInterval', (v) => svc({}, { consul: { refreshInterval: v } })],
  ['…file.pollInterval', (v) => svc({}, { file: { path: '/x', pollInterval: v } })],
];

describe('durations longer than a timer can wait (2^31-1 ms, about 24.8 days)', () => {
  it.each(DURATIONS)('%s: "600h" is refused, naming the field and the maximum', (name, build) => {
    const found = refused(build('600h'));
    expect(found).toHaveLength(1);
    expect(found[0]?.path.endsWith(name.replace('…', ''))).toBe(true);
    expect(found[0]?.message).toBe(
      '"600h" is longer than the maximum duration, 2147483647 ms (about 24.8 days, the longest a Node.js timer can wait)',
    );
  });

  it.each(DURATIONS)('%s: a 400-digit number is refused, not read as Infinity', (_name, build) => {
    expect(refused(build('9'.repeat(400)))[0]?.message).toMatch(/is longer than the maximum duration/);
    expect(refused(build(`${'9'.repeat(400)}h`))[0]?.message).toMatch(/is longer than the maximum duration/);
    expect(refused(build(2 ** 31))[0]?.message).toMatch(/^2147483648 is longer than the maximum duration/);
  });

  // clockSkew has a tighter bound of its own (at most 5 minutes), tested with the token rules.
  it.each(DURATIONS.filter(([name]) => !name.endsWith('clockSkew')))(
    '%s: the maximum itself is accepted',
    (_name, build) => {
      expect(() => validateConfig(build(2_147_483_647))).not.toThrow();
      expect(() => validateConfig(build('576h'))).not.toThrow();
    },
  );
});

describe('values that would fail every request or make the mesh spin', () => {
  it.each([
    ['…connectionPool.http.idleTimeout', policy({ connectionPool: { http: { idleTimeout: 0 } } }), 1],
    ['…connectionPool.tcp.connectTimeout', policy({ connectionPool: { tcp: { connectTimeout: '0s' } } }), 1],
    ['…discovery.healthCheck.interval', svc({}, { ...STATIC, healthCheck: { interval: 0 } }), 100],
    ['…discovery.healthCheck.interval', svc({}, { ...STATIC, healthCheck: { interval: '50ms' } }), 100],
    ['…discovery.healthCheck.timeout', svc({}, { ...STATIC, healthCheck: { timeout: 0 } }), 1],
    ['…retryBudget.ttl', svc({ retryBudget: { ttl: '0s' } }), 1],
    ['…circuitBreaker.rollingCountTimeout', policy({ circuitBreaker: { rollingCountTimeout: 0 } }), 1000],
    [
      '…circuitBreaker.rollingCountTimeout',
      policy({ circuitBreaker: { rollingCountTimeout: '500ms' } }),
      1000,
    ],
    ['…outlierDetection.interval', policy({ outlierDetection: { interval: 0 } }), 1],
    ['…dns.timeout', svc({}, { dns: { host: 'x', port: 80, timeout: 0 } }), 1],
    ['…dns.minRefresh', svc({}, { dns: { host: 'x', port: 80, minRefresh: 0 } }), 100],
    ['…dns.maxRefresh', svc({}, { dns: { host: 'x', port: 80, maxRefresh: '10ms' } }), 100],
    ['…file.pollInterval', svc({}, { file: { path: '/x', pollInterval: 0 } }), 100],
    ['…consul.refreshInterval', svc({}, { consul: { refreshInterval: 0 } }), 100],
  ])('%s below its floor is refused (%#)', (name, config, floor) => {
    const found = refused(config);
    expect(found).toHaveLength(1);
    expect(found[0]?.path.endsWith(name.replace('…', ''))).toBe(true);
    expect(found[0]?.message).toContain(`must be at least ${floor} ms`);
  });

  it('the floors themselves are accepted, and 0 still means "off" where it always did', () => {
    for (const config of [
      policy({ connectionPool: { http: { idleTimeout: '1ms' }, tcp: { connectTimeout: '1ms' } } }),
      svc({}, { ...STATIC, healthCheck: { interval: '100ms', timeout: '1ms' } }),
      svc({ retryBudget: { ttl: '1ms' }, timeout: 0, retries: { perTryTimeout: 0 } }),
      policy({ circuitBreaker: { rollingCountTimeout: '1s' }, outlierDetection: { interval: '1ms' } }),
      svc({}, { dns: { host: 'x', port: 80, timeout: 1, minRefresh: 100, maxRefresh: 100 } }),
      svc({}, { file: { path: '/x', pollInterval: '100ms' } }),
      svc({}, { consul: { refreshInterval: '100ms', minInterval: 0, wait: 0 } }),
      { closeTimeout: 0, ...svc({}, { ...STATIC, initialTimeout: 0, drainTimeout: 0 }) },
    ]) {
      expect(() => validateConfig(config), JSON.stringify(config)).not.toThrow();
    }
  });

  it('a Maglev table larger than Envoy allows (5000011) is refused before any primality test', () => {
    const lb = (tableSize: number) =>
      policy({ loadBalancer: { consistentHash: { httpHeaderName: 'x', maglev: { tableSize } } } });
    expect(() => validateConfig(lb(5_000_011))).not.toThrow();
    const started = performance.now();
    const found = refused(lb(9_007_199_254_740_881));
    expect(performance.now() - started).toBeLessThan(100);
    expect(found.map((i) => i.message)).toEqual(['9007199254740881 must be <= 5000011']);
    expect(refused(lb(5_000_101))[0]?.message).toBe('5000101 must be <= 5000011');
  });
});

describe('header and rewrite values that cannot be sent', () => {
  const BAD = ['a\r\nx-injected: 1', 'a\nb', 'a\rb', 'a\u0000b', 'a\u0007b', 'a\u007fb', 'snow \u2603'];

  it.each(BAD)('a header value %j is refused in set and add, request and response', (value) => {
    for (const [where, ops] of [
      ['request.set', { request: { set: { 'x-a': value } } }],
      ['request.add', { request: { add: { 'x-a': value } } }],
      ['response.set', { response: { set: { 'x-a': value } } }],
      ['response.add', { response: { add: { 'x-a': value } } }],
    ] as const) {
      for (const [path, config] of [
        [`services.a.http[0].headers.${where}.x-a`, route({ headers: ops })],
        [
          `services.a.http[0].route[0].headers.${where}.x-a`,
          svc({ http: [{ route: [{ destination: { host: 'a' }, headers: ops }] }] }),
        ],
      ] as const) {
        const found = refused(config);
        expect(found.map((i) => i.path)).toEqual([path]);
        expect(found[0]?.message).toMatch(/cannot be sent in an HTTP header/);
      }
    }
  });

  it('header values with tabs, spaces and Latin-1 text are accepted', () => {
    expect(() =>
      validateConfig(
        route({ headers: { request: { set: { 'x-a': 'a\tb c caf\u00e9' }, add: { 'x-b': '' } } } }),
      ),
    ).not.toThrow();
  });

  it.each(['x a', 'x:a', 'x\r\na', '', 'x\u0000'])(
    'a header name %j is refused in set, add and remove',
    (name) => {
      const found = refused(
        route({ headers: { request: { set: { [name]: 'v' }, add: { [name]: 'v' }, remove: [name] } } }),
      );
      expect(found).toHaveLength(3);
    },
  );

  it.each(['a\r\nb', 'a\nb', 'a\u0000b', 'a b', 'a/b', 'a?b', 'a#b'])(
    'rewrite.authority %j is refused',
    (authority) => {
      const found = refused(route({ rewrite: { authority } }));
      expect(found.map((i) => i.path)).toEqual(['services.a.http[0].rewrite.authority']);
    },
  );

  it.each(['/a\r\nb', '/a\nb', '/a\u0000b', '/a b', '/\u2603'])('rewrite.uri %j is refused', (uri) => {
    const found = refused(route({ rewrite: { uri } }));
    expect(found.map((i) => i.path)).toEqual(['services.a.http[0].rewrite.uri']);
  });

  it('usual authorities and paths are accepted', () => {
    for (const rewrite of [
      { authority: 'reviews.internal' },
      { authority: 'reviews.internal:8080' },
      { authority: '[::1]:8080' },
      { uri: '/v2/api?x=%20y&z=1' },
      { uri: '/' },
    ]) {
      expect(() => validateConfig(route({ rewrite })), JSON.stringify(rewrite)).not.toThrow();
    }
  });
});
