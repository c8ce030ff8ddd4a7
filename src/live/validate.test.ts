import { describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.ts';
import { configKey } from './key.ts';
import { IncrementalValidator } from './validate.ts';

const svc = (extra: Record<string, unknown> = {}) => ({
  discovery: { static: [{ address: '10.0.0.1:80', labels: { v: '1' } }] },
  subsets: [{ name: 'a', labels: { v: '1' } }],
  ...extra,
});

/** Either the config or the error message: what a verdict is. */
function verdict(f: () => unknown): unknown {
  try {
    return configKey(f());
  } catch (err) {
    return (err as Error).message;
  }
}

describe('IncrementalValidator: the verdict of validateConfig, at the cost of what changed', () => {
  const docs: unknown[] = [
    { services: { a: svc(), b: svc() } },
    { services: { a: svc(), b: svc({ timeout: '2s' }) } },
    // b routes to a subset of a that a no longer has: a reference across services.
    { services: { a: svc(), b: svc({ http: [{ route: [{ destination: { host: 'a', subset: 'a' } }] }] }) } },
    {
      services: {
        a: svc({ subsets: [] }),
        b: svc({ http: [{ route: [{ destination: { host: 'a', subset: 'a' } }] }] }),
      },
    },
    { services: { a: svc(), b: svc({ timeout: 'soon' }) } },
    { services: { a: svc(), Bad_Name: svc() } },
    { colour: 'red', services: { a: svc() } },
    {
      services: {
        a: svc({ subsets: [{ name: 'a', labels: { v: '1' }, trafficPolicy: { tls: { mode: 'SIMPLE' } } }] }),
      },
    },
    {
      unknownServices: 'passthrough',
      services: { a: svc({ http: [{ route: [{ destination: { host: 'elsewhere' } }] }] }) },
    },
    { services: { a: svc({ http: [{ route: [{ destination: { host: 'elsewhere' } }] }] }) } },
    JSON.parse('{"services":{"a":{"discovery":{"static":[]},"__proto__":{"x":1}}}}'),
    { services: { a: svc() } },
  ];

  it('accepts and refuses exactly what validateConfig does, with the same message, in any order', () => {
    const v = new IncrementalValidator();
    for (const order of [docs, [...docs].reverse(), [...docs, ...docs]])
      for (const doc of order)
        expect(verdict(() => v.validate(doc))).toEqual(verdict(() => validateConfig(doc)));
  });

  it('keeps an unchanged service: the same validated object', () => {
    const v = new IncrementalValidator();
    const one = v.validate({ services: { a: svc(), b: svc({ timeout: '1s' }) } });
    const two = v.validate({ services: { a: svc(), b: svc({ timeout: '2s' }) } });
    expect(two.services.a).toBe(one.services.a);
    expect(two.services.b).not.toBe(one.services.b);
    expect(two.services.b?.timeout).toBe(2000);
    expect(Object.getPrototypeOf(two.services)).toBeNull();
  });

  it('never takes a cached verdict for input JSON cannot show: functions, toJSON, class instances', () => {
    const v = new IncrementalValidator();
    v.validate({ services: { a: svc({ timeout: '2s' }) } });
    const sneaky = { ...svc({ timeout: '2s' }), toJSON: () => svc({ timeout: '2s' }) };
    expect(() => v.validate({ services: { a: sneaky } })).toThrow(/services\.a\.toJSON: unknown field/);
    expect(() => v.validate({ services: { a: { ...svc(), timeout: () => 2000 } } })).toThrow(
      /services\.a\.timeout/,
    );
    expect(() => v.validate({ services: { a: { ...svc(), timeout: new Date() } } })).toThrow(
      /services\.a\.timeout/,
    );
  });
});
