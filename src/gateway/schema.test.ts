import { describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.ts';
import { passthroughSni } from './config.ts';

const TLS = { mode: 'ISTIO_MUTUAL', trustDomain: 'west.example' };
const identity = { cert: 'c', key: 'k', ca: 'a' };
const svc = (s: Record<string, unknown>) => () => validateConfig({ identity, services: { reviews: s } });

describe('services.<name>.gateway: config errors name the path and the value', () => {
  it('accepts a passthrough gateway and puts its address in discovery', () => {
    const c = validateConfig({
      identity,
      services: {
        reviews: { gateway: { mode: 'AUTO_PASSTHROUGH', address: 'gw:15443' }, trafficPolicy: { tls: TLS } },
      },
    });
    expect(c.services.reviews?.discovery).toEqual({ static: ['gw:15443'] });
    const d = validateConfig({
      services: {
        details: {
          gateway: { mode: 'TERMINATE', discovery: { dns: { host: 'gw.west.example', port: 443 } } },
        },
      },
    });
    expect(d.services.details?.discovery.dns).toMatchObject({ host: 'gw.west.example', port: 443 });
  });

  it('refuses a gateway without an address, with both address and discovery, or beside discovery', () => {
    expect(svc({ gateway: { mode: 'AUTO_PASSTHROUGH' }, trafficPolicy: { tls: TLS } })).toThrow(
      /services\.reviews\.gateway\.address: is required/,
    );
    expect(
      svc({
        gateway: { mode: 'TERMINATE', address: 'gw:443', discovery: { static: ['gw:443'] } },
      }),
    ).toThrow(/services\.reviews\.gateway\.discovery: .*cannot be used with gateway\.address/);
    expect(
      svc({ gateway: { mode: 'TERMINATE', address: 'gw:443' }, discovery: { static: ['a:1'] } }),
    ).toThrow(/services\.reviews\.discovery: .*cannot be used with `gateway`/);
    expect(svc({ gateway: { mode: 'TERMINATE', address: 'gw' } })).toThrow(
      /services\.reviews\.gateway\.address/,
    );
    expect(svc({ gateway: { mode: 'PASSTHROUGH', address: 'gw:443' } })).toThrow(
      /services\.reviews\.gateway\.mode.*"PASSTHROUGH"|services\.reviews\.gateway\.mode/,
    );
    expect(svc({})).toThrow(/services\.reviews\.discovery: is required \(or `gateway`/);
  });

  it('AUTO_PASSTHROUGH needs TLS end to end, with the remote identity, and its own SNI', () => {
    const gw = { mode: 'AUTO_PASSTHROUGH', address: 'gw:15443' };
    expect(svc({ gateway: gw })).toThrow(
      /services\.reviews\.trafficPolicy\.tls: is required with gateway\.mode AUTO_PASSTHROUGH/,
    );
    expect(svc({ gateway: gw, trafficPolicy: { tls: { mode: 'SIMPLE' } } })).toThrow(
      /services\.reviews\.trafficPolicy\.tls: .*needs subjectAltNames or trustDomain/,
    );
    expect(svc({ gateway: gw, trafficPolicy: { tls: { ...TLS, sni: 'reviews' } } })).toThrow(
      /services\.reviews\.trafficPolicy\.tls\.sni: .*cannot be set with gateway\.mode AUTO_PASSTHROUGH/,
    );
    expect(
      svc({ gateway: { ...gw, subjectAltNames: ['spiffe://west.example/gw'] }, trafficPolicy: { tls: TLS } }),
    ).toThrow(/services\.reviews\.gateway\.subjectAltNames: .*is only for mode TERMINATE/);
    expect(
      svc({
        gateway: gw,
        trafficPolicy: { tls: TLS },
        subsets: [{ name: 'v1', labels: { v: '1' }, trafficPolicy: { tls: TLS } }],
      }),
    ).toThrow(
      /services\.reviews\.subsets\.0\.trafficPolicy\.tls|services\.reviews\.subsets\[0\]\.trafficPolicy\.tls/,
    );
  });

  it('refuses portLevelSettings behind a gateway (the port is a remote route, not an endpoint port)', () => {
    expect(
      svc({
        gateway: { mode: 'TERMINATE', address: 'gw:443' },
        trafficPolicy: {
          portLevelSettings: [{ port: { number: 9080 }, loadBalancer: { simple: 'RANDOM' } }],
        },
      }),
    ).toThrow(/services\.reviews\.trafficPolicy\.portLevelSettings: .*is not supported behind a gateway/);
  });

  it('TERMINATE: TLS settings in one place, no SNI fields, no cleartext', () => {
    const gw = { mode: 'TERMINATE', address: 'gw:443' };
    expect(
      svc({ gateway: { ...gw, tls: { mode: 'SIMPLE' } }, trafficPolicy: { tls: { mode: 'SIMPLE' } } }),
    ).toThrow(/services\.reviews\.trafficPolicy\.tls: .*cannot be used with gateway\.tls/);
    expect(svc({ gateway: { ...gw, port: 9080 } })).toThrow(
      /services\.reviews\.gateway\.port: .*is only for mode AUTO_PASSTHROUGH/,
    );
    expect(svc({ gateway: { ...gw, tls: { mode: 'DISABLE' } } })).toThrow(
      /services\.reviews\.gateway\.tls: .*mode DISABLE/,
    );
  });
});

describe('services.<name>.context', () => {
  it('propagate: true, false or header names (lowercased)', () => {
    const c = validateConfig({
      services: { a: { discovery: { static: ['a:1'] }, context: { propagate: ['X-Plan'] } } },
    });
    expect(c.services.a?.context).toEqual({ propagate: ['x-plan'] });
    expect(() =>
      validateConfig({
        services: { a: { discovery: { static: ['a:1'] }, context: { propagate: ['bad header'] } } },
      }),
    ).toThrow(/services\.a\.context\.propagate\.0|services\.a\.context\.propagate\[0\]/);
  });
});

describe("Istio's SNI for AUTO_PASSTHROUGH (BuildDNSSrvSubsetKey)", () => {
  it('outbound_.<port>_.<subset>_.<host>, the subset empty when none', () => {
    expect(passthroughSni(9080, 'v2', 'reviews.default.svc.cluster.local')).toBe(
      'outbound_.9080_.v2_.reviews.default.svc.cluster.local',
    );
    expect(passthroughSni(80, undefined, 'reviews')).toBe('outbound_.80_._.reviews');
  });
});
