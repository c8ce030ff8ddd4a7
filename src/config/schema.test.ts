/**
 * What the mesh config refuses at createMesh time: hostile names and keys.
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
