/**
 * Adversarial config input, as property tests: whatever createMesh or fromIstio is given, it
 * either works or throws a MeshworkError naming where the problem is; it never throws anything
 * else, never hangs, and never touches Object.prototype, Array.prototype or Function.prototype.
 * Every mesh uses static discovery (nothing networked starts) and is closed.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  createMesh,
  fromIstio,
  type IstioUnsupportedError,
  isMeshworkError,
  type Mesh,
  type MeshworkConfigError,
} from '../../src/index.ts';
import { startServer, type TestServer } from '../support/servers.ts';

const RUNS = 200;
const HOSTILE = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'];

/** Field names the schemas know, so random trees reach past the first level. */
const FIELDS = [
  ...['zone', 'unknownServices', 'closeTimeout', 'context', 'authorization', 'services', 'trafficPolicy'],
  ...['http', 'subsets', 'retries', 'timeout', 'retryBudget', 'loadBalancer', 'connectionPool', 'tcp'],
  ...['maxConnections', 'connectTimeout', 'http1MaxPendingRequests', 'http2MaxRequests', 'idleTimeout'],
  ...['maxRequestsPerConnection', 'outlierDetection', 'circuitBreaker', 'interval', 'baseEjectionTime'],
  ...['consecutive5xxErrors', 'maxEjectionPercent', 'resetTimeout', 'rollingCountTimeout', 'volumeThreshold'],
  ...['errorThresholdPercentage', 'simple', 'consistentHash', 'httpHeaderName', 'httpCookie', 'ttl', 'name'],
  ...['maglev', 'tableSize', 'ringHash', 'minimumRingSize', 'warmup', 'duration', 'warmupDurationSecs'],
  ...['match', 'route', 'destination', 'host', 'subset', 'weight', 'headers', 'request', 'response', 'set'],
  ...['add', 'remove', 'rewrite', 'uri', 'authority', 'fault', 'delay', 'fixedDelay', 'percentage', 'value'],
  ...['abort', 'httpStatus', 'mirror', 'mirrorPercentage', 'exact', 'prefix', 'regex', 'labels', 'attempts'],
  ...['perTryTimeout', 'retryOn', 'hedge', 'retryPercent', 'minRetriesPerSecond', 'enabled', 'policies'],
  ...['action', 'rules', 'from', 'to', 'source', 'principals', 'operation', 'paths', 'methods', 'trust'],
  // The code-only options, as a config parsed from JSON could carry them.
  ...['logger', 'clock', 'random', 'env', 'telemetry', 'fallbacks'],
];

const durationish = fc.oneof(
  fc.constantFrom('600h', '0', '0s', '1us', '1ms', '1m30s', '-1s', '1e3', ' 5s ', '2147483647', '2147483648'),
  fc.constantFrom('9'.repeat(400), `${'9'.repeat(400)}h`, '24.8d', '.5s', '1h1h1h', '0.0000001ms', 'NaN'),
  fc.integer({ min: -10, max: 2 ** 32 }),
  fc.double(),
);
const weirdString = fc.oneof(
  fc.constantFrom(...HOSTILE, '', ' ', 'a\r\nb', 'x\u0000', '*', '*.example.com', 'a..b', '\u2603', '/a b'),
  fc.string({ maxLength: 12 }),
  fc.string({ maxLength: 6, unit: 'binary' }),
);
const leaf = fc.oneof(
  durationish,
  weirdString,
  fc.integer(),
  fc.constantFrom(0, -1, 1, 100, 65535, 65536, Number.MAX_SAFE_INTEGER, 1e300, 2 ** 31, 0.5),
  fc.boolean(),
  fc.constant(null),
);
const key = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 5, arbitrary: fc.constantFrom(...FIELDS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);
const { tree } = fc.letrec<{ tree: unknown }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', maxDepth: 5 },
    leaf,
    fc.array(tie('tree'), { maxLength: 3 }),
    fc.dictionary(key, tie('tree'), { maxKeys: 4 }),
  ),
}));

/** A rich, valid config: mutations of it reach deep into every schema. */
function template(address: string): Record<string, unknown> {
  return {
    zone: 'eu-1',
    closeTimeout: '1s',
    context: { headers: ['x-tenant'], trust: { signature: { hmacSecret: 'k'.repeat(16), clockSkew: '5s' } } },
    authorization: {
      policies: [{ name: 'p', action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/*'] } }] }] }],
    },
    services: {
      reviews: {
        discovery: { static: [{ address, labels: { version: 'v1' }, weight: 2 }], initialTimeout: '1s' },
        timeout: '2s',
        retries: { attempts: 2, perTryTimeout: '500ms', retryOn: '5xx,reset', hedge: { delay: '50ms' } },
        retryBudget: { retryPercent: 20, ttl: '10s' },
        trafficPolicy: {
          loadBalancer: { simple: 'ROUND_ROBIN', warmup: { duration: '10s' } },
          connectionPool: { tcp: { maxConnections: 10, connectTimeout: '1s' }, http: { idleTimeout: '5s' } },
          outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s' },
          circuitBreaker: { volumeThreshold: 5, resetTimeout: '5s', rollingCountTimeout: '10s' },
        },
        subsets: [
          { name: 'v1', labels: { version: 'v1' } },
          { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } },
        ],
        http: [
          {
            match: [{ headers: { 'end-user': { exact: 'jason' } }, uri: { prefix: '/a' } }],
            headers: { request: { set: { 'x-a': '1' }, add: { 'x-b': '2' }, remove: ['x-c'] } },
            rewrite: { uri: '/b', authority: 'reviews.internal' },
            fault: { delay: { fixedDelay: '1ms', percentage: { value: 0 } } },
            route: [{ destination: { subset: 'v2' }, weight: 100 }],
            mirror: { host: 'ratings' },
            mirrorPercentage: { value: 1 },
          },
          { route: [{ destination: { host: 'reviews', subset: 'v1' } }], timeout: '1s' },
        ],
      },
      ratings: {
        discovery: { static: [address] },
        trafficPolicy: {
          loadBalancer: {
            consistentHash: { httpCookie: { name: 'sid', ttl: '1h' }, ringHash: { minimumRingSize: 64 } },
          },
        },
      },
    },
  };
}

/** Every path of a JSON-ish tree (objects and arrays), root excluded. */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []) {
  if (value === null || typeof value !== 'object') return out;
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  for (const k of keys) {
    out.push([...prefix, k]);
    paths((value as Record<string | number, unknown>)[k], [...prefix, k], out);
  }
  return out;
}

/** Sets (or, with `undefined`, deletes) a key, as JSON.parse would create it: an own property. */
function put(target: unknown, k: string | number, v: unknown): void {
  if (target === null || typeof target !== 'object') return;
  if (v === undefined) delete (target as Record<string | number, unknown>)[k];
  else Object.defineProperty(target, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function at(root: unknown, path: readonly (string | number)[]): unknown {
  let cur = root;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, seg)) return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

const mutation = fc.record({
  where: fc.nat(),
  op: fc.constantFrom('set', 'delete', 'addKey'),
  key: fc.oneof(fc.constantFrom(...HOSTILE), key),
  value: tree,
});

const protoState = () => ({
  names: [Object.prototype, Array.prototype, Function.prototype, Object, Array, Function].map((o) =>
    Object.getOwnPropertyNames(o).sort(),
  ),
  identities: [
    {}.constructor === Object,
    [].constructor === Array,
    (() => {}).constructor === Function,
    Object.getPrototypeOf({}) === Object.prototype,
    typeof Object.prototype.toString === 'function',
    Object.hasOwn({ a: 1 }, 'a'),
    String({}) === '[object Object]',
  ],
});

let server: TestServer;
let clean: ReturnType<typeof protoState>;
beforeAll(async () => {
  server = await startServer();
  clean = protoState();
});
afterAll(async () => {
  await server.close();
});

/** Resolves when the mesh is closed; fails when closing takes more than 2 s. */
async function closeIn(mesh: Mesh): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('mesh.close() hung')), 2_000);
  });
  try {
    await Promise.race([mesh.close(), hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** createMesh either works (then is closed) or throws a config error whose issues all name a path. */
async function meshOrConfigError(config: unknown): Promise<'mesh' | 'refused'> {
  let mesh: Mesh;
  try {
    mesh = createMesh({ env: {}, ...(config as object) });
  } catch (err) {
    if (!isMeshworkError(err, 'MESHWORK_ERR_CONFIG'))
      throw new Error(`not a config error: ${String(err)}`, { cause: err });
    const issues = (err as MeshworkConfigError).issues;
    expect(issues.length).toBeGreaterThan(0);
    for (const issue of issues) expect(issue.path, err.message).not.toBe('');
    return 'refused';
  }
  await closeIn(mesh);
  return 'mesh';
}

/** Keeps discovery static: nothing networked may start from a generated config. */
function staticOnly(config: unknown, address: string): unknown {
  const services = at(config, ['services']);
  if (services !== null && typeof services === 'object' && !Array.isArray(services)) {
    for (const name of Object.keys(services)) {
      const svc = (services as Record<string, unknown>)[name];
      if (svc !== null && typeof svc === 'object' && !Array.isArray(svc))
        put(svc, 'discovery', { static: [address] });
    }
  }
  return config;
}

describe('createMesh on adversarial configs', () => {
  it('a mutated valid config creates a mesh or throws MESHWORK_ERR_CONFIG naming paths; nothing global changes', async () => {
    const outcomes = { mesh: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        const config = template(server.address);
        for (const m of mutations) {
          const all = paths(config).filter((p) => !p.includes('discovery') || p.includes('labels'));
          const path = all[m.where % all.length] as (string | number)[];
          if (m.op === 'addKey') {
            // JSON and YAML give keys to mappings only (an array never has a "constructor" key).
            const parent = at(config, path);
            const target = isMapping(parent) ? parent : at(config, path.slice(0, -1));
            if (isMapping(target)) put(target, m.key, m.value);
          } else {
            put(
              at(config, path.slice(0, -1)),
              path[path.length - 1] as string | number,
              m.op === 'set' ? m.value : undefined,
            );
          }
        }
        outcomes[await meshOrConfigError(staticOnly(config, server.address))]++;
        expect(protoState()).toEqual(clean);
      }),
      { numRuns: RUNS },
    );
    // Both outcomes must actually be exercised.
    expect(outcomes.mesh).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });

  it('random JSON trees (hostile keys, huge numbers, numeric strings, odd durations) never escape as another error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(key, tree, { maxKeys: 5 }),
        fc.dictionary(key, tree, { maxKeys: 3 }),
        async (top, services) => {
          const config = { ...top, services };
          await meshOrConfigError(staticOnly(config, server.address));
          expect(protoState()).toEqual(clean);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('the same configs through JSON text (JSON.parse keeps "__proto__" as an own key)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        const config = template(server.address);
        for (const m of mutations) {
          const all = paths(config).filter((p) => !p.includes('discovery'));
          const path = all[m.where % all.length] as (string | number)[];
          const parent = at(config, path);
          if (parent !== null && typeof parent === 'object' && !Array.isArray(parent))
            put(parent, m.key, m.value);
        }
        const json = JSON.stringify(config);
        const outcome = await meshOrConfigError(JSON.parse(json));
        // A "__proto__" key is refused, never silently dropped.
        if (json.includes('"__proto__":')) expect(outcome).toBe('refused');
        expect(protoState()).toEqual(clean);
      }),
      { numRuns: RUNS },
    );
  });
});

const hostArb = fc.oneof(
  fc.constantFrom(
    ...HOSTILE,
    'reviews',
    'ratings',
    'reviews.default.svc.cluster.local',
    'httpbin.org',
    '*',
    '*.x.com',
  ),
  fc.constantFrom(
    'a*b',
    'Reviews',
    'a_b',
    '-a',
    'a.',
    '',
    'x'.repeat(300),
    'constructor.default.svc.cluster.local',
  ),
  weirdString,
);
const istioDoc = fc.record(
  {
    apiVersion: fc.constantFrom(
      'networking.istio.io/v1',
      'networking.istio.io/v1beta1',
      'security.istio.io/v1',
      'v1',
    ),
    kind: fc.constantFrom('VirtualService', 'DestinationRule', 'AuthorizationPolicy', 'List', 'Gateway'),
    metadata: fc.record(
      { name: weirdString, namespace: fc.constantFrom('default', 'other') },
      { requiredKeys: ['name'] },
    ),
    spec: fc.record(
      {
        host: hostArb,
        hosts: fc.array(hostArb, { maxLength: 3 }),
        http: fc.array(
          fc.record(
            {
              match: fc.array(fc.dictionary(key, tree, { maxKeys: 3 }), { maxLength: 2 }),
              route: fc.array(
                fc.record({ destination: fc.record({ host: hostArb, subset: weirdString }), weight: leaf }),
                {
                  maxLength: 2,
                },
              ),
              headers: tree,
              timeout: durationish,
              retries: tree,
            },
            { requiredKeys: ['route'] },
          ),
          { maxLength: 2 },
        ),
        trafficPolicy: fc.dictionary(key, tree, { maxKeys: 3 }),
        subsets: fc.array(
          fc.record({ name: weirdString, labels: fc.dictionary(key, weirdString, { maxKeys: 3 }) }),
          {
            maxLength: 2,
          },
        ),
        rules: tree,
        action: fc.constantFrom('ALLOW', 'DENY', 'AUDIT', 'CUSTOM', 'x'),
        selector: tree,
      },
      { requiredKeys: [] },
    ),
    extra: fc.dictionary(key, tree, { maxKeys: 2 }),
  },
  { requiredKeys: ['apiVersion', 'kind', 'spec'] },
);

/** fromIstio either returns a result or throws a MeshworkError whose every issue names a path. */
function istioOrError(input: string | string[], strict: boolean): ReturnType<typeof fromIstio> | undefined {
  try {
    return fromIstio(input, { strict });
  } catch (err) {
    if (!isMeshworkError(err)) throw new Error(`not a MeshworkError: ${String(err)}`, { cause: err });
    const named =
      err.code === 'MESHWORK_ERR_CONFIG'
        ? (err as MeshworkConfigError).issues.map((i) => i.path)
        : (err as IstioUnsupportedError).problems.map((p) => p.path);
    expect(['MESHWORK_ERR_CONFIG', 'MESHWORK_ERR_ISTIO_UNSUPPORTED']).toContain(err.code);
    expect(named.length).toBeGreaterThan(0);
    for (const p of named) expect(p, err.message).not.toBe('');
    return undefined;
  }
}

describe('fromIstio on adversarial YAML', () => {
  it('generated documents: a result (that createMesh then accepts or refuses cleanly) or a MeshworkError naming a path', async () => {
    const outcomes = { result: 0, error: 0, mesh: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(istioDoc, { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        async (docs, strict) => {
          const text = docs
            .map(({ extra, ...doc }) => {
              const out = { ...doc };
              for (const k of Object.keys(extra ?? {})) put(out, k, extra?.[k]);
              return stringify(out);
            })
            .join('---\n');
          const result = istioOrError(text, strict);
          outcomes[result ? 'result' : 'error']++;
          if (result) {
            const services: Record<string, unknown> = {};
            for (const name of Object.keys(result.services)) {
              put(services, name, { ...result.services[name], discovery: { static: [server.address] } });
            }
            const config = { services, authorization: result.authorization, unknownServices: 'passthrough' };
            if ((await meshOrConfigError(config)) === 'mesh') outcomes.mesh++;
          }
          expect(protoState()).toEqual(clean);
        },
      ),
      { numRuns: RUNS },
    );
    expect(outcomes.result).toBeGreaterThan(0);
    expect(outcomes.error).toBeGreaterThan(0);
    expect(outcomes.mesh).toBeGreaterThan(0);
  });

  it('random and corrupted YAML text never escapes as another error', () => {
    const base = stringify({
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'x' },
      spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
    });
    const yamlish = fc.string({
      maxLength: 80,
      unit: fc.constantFrom(...'ab:-[]{}&*!|>\'"#%@`,? \n\t_.0123456789'.split('')),
    });
    const corrupted = fc
      .array(
        fc.record({
          at: fc.nat({ max: base.length }),
          text: fc.oneof(
            yamlish,
            fc.constantFrom('__proto__: 1\n', '&a [*a]', '*x', '!!binary AA==', '<<: *a'),
          ),
        }),
        {
          minLength: 1,
          maxLength: 3,
        },
      )
      .map((edits) => edits.reduce((s, e) => s.slice(0, e.at) + e.text + s.slice(e.at), base));
    fc.assert(
      fc.property(fc.oneof(yamlish, corrupted), fc.boolean(), (text, strict) => {
        istioOrError(text, strict);
        expect(protoState()).toEqual(clean);
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

describe('code-only options in a parsed config', () => {
  it('clock, random, logger, env, telemetry and fallbacks of the wrong type are config errors, not TypeErrors', () => {
    const json = '{"clock":5,"random":"x","logger":{},"env":null,"telemetry":"yes","fallbacks":{"a":1}}';
    try {
      createMesh(JSON.parse(json));
      throw new Error('expected a MeshworkConfigError');
    } catch (err) {
      expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG'), String(err)).toBe(true);
      expect((err as MeshworkConfigError).issues.map((i) => i.path)).toEqual([
        'clock',
        'random',
        'telemetry',
        'env',
        'logger',
        'fallbacks.a',
      ]);
    }
  });
});

describe('hostile service names at run time', () => {
  it('a service named constructor with fallbacks {} gets no fallback: the open breaker fails fast', async () => {
    const failing = await startServer((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    const mesh = createMesh({
      env: {},
      fallbacks: {},
      services: {
        constructor: {
          discovery: { static: [failing.address] },
          retries: { attempts: 0 },
          trafficPolicy: { circuitBreaker: { volumeThreshold: 2 }, outlierDetection: { enabled: false } },
        },
      },
    });
    try {
      await (await mesh.fetch('http://constructor/')).text();
      await (await mesh.fetch('http://constructor/')).text();
      const err = await mesh.fetch('http://constructor/').then(
        (res) => new Error(`expected a rejection, got ${res.status}`),
        (e: unknown) => e,
      );
      expect(isMeshworkError(err, 'MESHWORK_ERR_CIRCUIT_OPEN'), String(err)).toBe(true);
    } finally {
      await mesh.close();
      await failing.close();
    }
  });
});
