import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { binomialTolerance, seededRandom } from '../../test/support/seeded-random.ts';
import { trafficPolicySchema } from '../config/schema.ts';
import { authorize } from '../context/authorization.ts';
import { authorizationSchema } from '../context/schema.ts';
import { isMeshworkError, type MeshworkConfigError } from '../errors.ts';
import { decideFault } from '../fault/decide.ts';
import { compileDestinations } from '../routing/destination.ts';
import { compileRoutes } from '../routing/match.ts';
import { compileRouter } from '../routing/router.ts';
import { createRoutingFields } from '../routing/schema.ts';
import { fromIstio, type IstioUnsupportedError } from './index.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../../test/fixtures/istio/${name}`, import.meta.url), 'utf8');

/** The routing part of `services.<name>`, as createMesh will validate it. */
const serviceRouting = z.strictObject({
  ...createRoutingFields(trafficPolicySchema),
  trafficPolicy: trafficPolicySchema.optional(),
});

function validated(services: Record<string, unknown>) {
  return Object.fromEntries(Object.entries(services).map(([k, v]) => [k, serviceRouting.parse(v)]));
}

const unsupported = (fn: () => unknown): IstioUnsupportedError => {
  try {
    fn();
  } catch (err) {
    expect(isMeshworkError(err, 'MESHWORK_ERR_ISTIO_UNSUPPORTED')).toBe(true);
    return err as IstioUnsupportedError;
  }
  throw new Error('expected fromIstio to throw');
};

describe('fromIstio on the published Istio examples', () => {
  it('reviews-test-v2: the end-user: jason header match', () => {
    const { services } = fromIstio(fixture('virtual-service-reviews-test-v2.yaml'));
    expect(services).toEqual({
      reviews: {
        http: [
          {
            match: [{ headers: { 'end-user': { exact: 'jason' } } }],
            route: [{ destination: { host: 'reviews', subset: 'v2' } }],
          },
          { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
        ],
      },
    });
    const reviews = validated(services).reviews!;
    const table = compileRoutes(reviews.http!);
    const subset = (h: Record<string, string>) =>
      table.match({ method: 'GET', path: '/reviews/0', headers: h })?.route.route?.[0]?.destination.subset;
    expect(subset({ 'end-user': 'jason' })).toBe('v2');
    expect(subset({ 'end-user': 'alice' })).toBe('v1');
    expect(subset({})).toBe('v1');
  });

  it('reviews-50-v3 (v1alpha3) and reviews-90-10 (v1beta1): weighted shifts', () => {
    for (const [file, weights] of [
      ['virtual-service-reviews-50-v3.yaml', { v1: 50, v3: 50 }],
      ['virtual-service-reviews-90-10.yaml', { v1: 90, v2: 10 }],
    ] as const) {
      const reviews = validated(fromIstio(fixture(file)).services).reviews!;
      const picker = compileDestinations(reviews.http![0]!.route!);
      expect(Object.fromEntries(picker.destinations.map((d) => [d.destination.subset, d.weight]))).toEqual(
        weights,
      );
    }
  });

  it('ratings-test-delay and -abort: fault injection', () => {
    const delay = validated(fromIstio(fixture('virtual-service-ratings-test-delay.yaml')).services).ratings!;
    expect(delay.http![0]!.fault).toEqual({ delay: { fixedDelay: 7000, percentage: { value: 100 } } });
    expect(delay.http![1]!.fault).toBeUndefined();
    const abort = validated(fromIstio(fixture('virtual-service-ratings-test-abort.yaml')).services).ratings!;
    expect(abort.http![0]!.fault).toEqual({ abort: { httpStatus: 500, percentage: { value: 100 } } });
  });

  it('ratings-test-abort end to end: jason always gets the 500, others never; 90-10 splits 90/10', () => {
    const ratings = compileRouter(
      validated(fromIstio(fixture('virtual-service-ratings-test-abort.yaml')).services).ratings!.http,
    );
    const random = seededRandom(5);
    const aborted = (user: string | undefined) => {
      let n = 0;
      for (let i = 0; i < 1000; i++) {
        const d = ratings.route(
          { method: 'GET', path: '/ratings/0', headers: user ? { 'end-user': user } : {} },
          random,
        );
        if (decideFault(d!.route.config.fault, random).abortStatus === 500) n++;
      }
      return n;
    };
    expect(aborted('jason')).toBe(1000);
    expect(aborted('alice')).toBe(0);
    expect(aborted(undefined)).toBe(0);

    const reviews = compileRouter(
      validated(fromIstio(fixture('virtual-service-reviews-90-10.yaml')).services).reviews!.http,
    );
    const n = 50_000;
    let v2 = 0;
    for (let i = 0; i < n; i++) {
      if (
        reviews.route({ method: 'GET', path: '/reviews/0', headers: {} }, random)!.destination.destination
          .subset === 'v2'
      )
        v2++;
    }
    expect(Math.abs(v2 / n - 0.1)).toBeLessThan(binomialTolerance(0.1, n));
  });

  it('httpbin mirroring: mirror, mirrorPercentage and subsets from one multi-document file', () => {
    const { services } = fromIstio(fixture('httpbin-mirror.yaml'));
    const httpbin = validated(services).httpbin!;
    expect(httpbin.http![0]!.mirror).toEqual({ host: 'httpbin', subset: 'v2' });
    expect(httpbin.http![0]!.mirrorPercentage).toEqual({ value: 100 });
    expect(httpbin.subsets!.map((s) => s.name)).toEqual(['v1', 'v2']);
  });

  it('destination-rule-all: subsets for every service', () => {
    const services = validated(fromIstio(fixture('destination-rule-all.yaml')).services);
    expect(Object.keys(services)).toEqual(['productpage', 'reviews', 'ratings', 'details']);
    expect(services.reviews!.subsets).toEqual([
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' } },
      { name: 'v3', labels: { version: 'v3' } },
    ]);
    expect(services.ratings!.subsets!.map((s) => s.name)).toEqual(['v1', 'v2', 'v2-mysql', 'v2-mysql-vm']);
  });

  it('several inputs at once merge VirtualService and DestinationRule per host', () => {
    const { services } = fromIstio([
      fixture('destination-rule-all.yaml'),
      fixture('virtual-service-reviews-90-10.yaml'),
      fixture('virtual-service-ratings-test-abort.yaml'),
    ]);
    const v = validated(services);
    expect(v.reviews!.http).toHaveLength(1);
    expect(v.reviews!.subsets).toHaveLength(3);
    expect(v.ratings!.http).toHaveLength(2);
  });
});

describe('fromIstio: unsupported fields are never ignored silently', () => {
  it('bookinfo-gateway: the Gateway kind is reported; the VirtualService bound to it is left out with a note', () => {
    const err = unsupported(() => fromIstio(fixture('bookinfo-gateway.yaml')));
    expect(err.problems.map((p) => p.path)).toEqual(['document 1']);
    expect(err.message).toMatch(/1 unsupported field/);
    const warnings: string[] = [];
    const lax = fromIstio(fixture('bookinfo-gateway.yaml'), { strict: false, warn: (w) => warnings.push(w) });
    expect(lax.services).toEqual({});
    expect(warnings[0]).toContain(
      'VirtualService/bookinfo spec.gateways: binds the routes to ["bookinfo-gateway"] only',
    );
  });

  it('destination-rule-all-mtls: trafficPolicy.tls ISTIO_MUTUAL is carried over', () => {
    const { services } = fromIstio(fixture('destination-rule-all-mtls.yaml'));
    expect(services.reviews).toEqual({
      trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
        { name: 'v3', labels: { version: 'v3' } },
      ],
    });
    expect(validated(services).reviews?.trafficPolicy?.tls?.mode).toBe('ISTIO_MUTUAL');
  });

  it('ClientTLSSettings: files, SAN, SNI carried over; credentialName read from the mounted secret; skip-verify warned', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: payments }
spec:
  host: payments
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: /etc/certs/cert.pem
      privateKey: /etc/certs/key.pem
      caCertificates: /etc/certs/ca.pem
      subjectAltNames: [spiffe://example.org/ns/default/sa/payments]
      sni: payments.example.org
      insecureSkipVerify: false
`;
    const { services } = fromIstio(yaml);
    expect(services.payments?.trafficPolicy?.tls).toEqual({
      mode: 'MUTUAL',
      clientCertificate: '/etc/certs/cert.pem',
      privateKey: '/etc/certs/key.pem',
      caCertificates: '/etc/certs/ca.pem',
      subjectAltNames: ['spiffe://example.org/ns/default/sa/payments'],
      sni: 'payments.example.org',
      insecureSkipVerify: false,
    });
    expect(validated(services).payments?.trafficPolicy?.tls?.mode).toBe('MUTUAL');

    const bad = yaml.replace(
      'clientCertificate: /etc/certs/cert.pem',
      'credentialName: payments-client-cert',
    );
    const err = unsupported(() => fromIstio(bad));
    expect(err.problems.map((p) => p.path)).toEqual([
      'DestinationRule/payments spec.trafficPolicy.tls.credentialName',
    ]);
    expect(err.message).toContain('is set together with file paths');

    // credentialName alone: the files of the mounted secret; insecureSkipVerify: true carried, loudly.
    const secret = fromIstio(
      yaml
        .replace(/\n {6}(clientCertificate|privateKey|caCertificates): \S+/g, '')
        .replace(
          'insecureSkipVerify: false',
          'insecureSkipVerify: true\n      credentialName: payments-client-cert',
        ),
      { credentialsDir: '/var/run/secrets/istio/' },
    );
    expect(secret.services.payments?.trafficPolicy?.tls).toMatchObject({
      mode: 'MUTUAL',
      clientCertificate: '/var/run/secrets/istio/payments-client-cert/tls.crt',
      privateKey: '/var/run/secrets/istio/payments-client-cert/tls.key',
      caCertificates: '/var/run/secrets/istio/payments-client-cert/ca.crt',
      insecureSkipVerify: true,
    });
    expect(secret.warnings.join('\n')).toMatch(
      /insecureSkipVerify: is true: the server certificate and name will NOT be verified/,
    );
  });

  it('lists every unsupported path of a route, a match and a policy', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  tcp: [{ route: [{ destination: { host: reviews } }] }]
  tls: []
  http:
  - match:
    - uri: { prefix: /a }
      headers: { "@request.auth.claims.group": { exact: admin } }
    route: [{ destination: { host: reviews } }]
    fault:
      abort: { grpcStatus: UNAVAILABLE, percentage: { value: 1 } }
  - delegate: { name: other }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    outlierDetection: { consecutive5xxErrors: 5, splitExternalLocalOriginErrors: true }
    connectionPool: { http: { http2MaxRequests: 100 } }
    tunnel: { targetHost: x, targetPort: 1 }
`;
    const err = unsupported(() => fromIstio(yaml));
    expect(err.problems.map((p) => p.path)).toEqual([
      'VirtualService/reviews spec.tcp',
      'VirtualService/reviews spec.tls',
      'VirtualService/reviews spec.http[0].match[0].headers.@request.auth.claims.group',
      'VirtualService/reviews spec.http[1].delegate',
      'DestinationRule/reviews spec.trafficPolicy.tunnel',
    ]);
    const { services } = fromIstio(yaml, { strict: false });
    const v = validated(services);
    expect(v.reviews!.http).toHaveLength(1);
    expect(v.reviews!.http![0]!.match).toEqual([{ uri: { prefix: '/a' } }]);
    expect(v.reviews!.http![0]!.fault).toEqual({
      abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 1 } },
    });
    expect(v.reviews!.trafficPolicy).toEqual({
      loadBalancer: { simple: 'LEAST_REQUEST', panicThreshold: 0 },
      outlierDetection: {
        consecutive5xxErrors: 5,
        consecutiveLocalOriginFailures: 5,
        enforcingSuccessRate: 0,
      },
      connectionPool: { http: { http2MaxRequests: 100 } },
    });
  });

  it('a fault without percentage injects nothing, as in Istio, with a warning; deprecated percent is mapped', () => {
    const vs = (abort: string) => `
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: ratings }
spec:
  hosts: [ratings]
  http:
  - route: [{ destination: { host: ratings } }]
    mirror: { host: ratings, subset: v2 }
    mirrorPercent: 5
    fault:
      abort: ${abort}
`;
    const strict = fromIstio(vs('{ httpStatus: 503 }'));
    expect(strict.warnings).toEqual([
      'fromIstio: VirtualService/ratings spec.http[0].fault.abort.percentage: is missing: Istio then injects nothing (istio/istio#36303), and so does meshwork (percentage 0); set percentage.value to inject',
    ]);
    expect(strict.services.ratings!.http![0]!.fault).toEqual({
      abort: { httpStatus: 503, percentage: { value: 0 } },
    });
    const route = fromIstio(
      vs('{ httpStatus: 503, percentage: { value: 1 } }\n      delay: { fixedDelay: 1s, percent: 25 }'),
    ).services.ratings!.http![0]!;
    expect(route.fault).toEqual({
      abort: { httpStatus: 503, percentage: { value: 1 } },
      delay: { fixedDelay: '1s', percentage: { value: 25 } },
    });
    // Istio's abort has no `percent` (only the delay kept the deprecated field).
    expect(() => fromIstio(vs('{ httpStatus: 503, percent: 25 }'))).toThrow(
      /fault\.abort\.percent: is not supported/,
    );
    expect(route.mirrorPercentage).toEqual({ value: 5 });
    expect(route).not.toHaveProperty('mirrorPercent');
  });

  it('refuses a second VirtualService for the same host', () => {
    const one = fixture('virtual-service-reviews-90-10.yaml');
    const err = unsupported(() => fromIstio([one, fixture('virtual-service-reviews-50-v3.yaml')]));
    expect(err.problems[0]!.message).toMatch(/already has VirtualService\/reviews/);
  });

  it('bad YAML is a config error naming the document', () => {
    try {
      fromIstio('kind: VirtualService\n---\nspec: [\n');
      throw new Error('expected a throw');
    } catch (err) {
      expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG')).toBe(true);
      expect((err as Error).message).toMatch(/fromIstio document 2: is not valid YAML/);
    }
  });
});

describe('fromIstio host names', () => {
  const vs = (host: string, dest: string, ns = '') => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: r${ns ? `, namespace: ${ns}` : ''} }
spec:
  hosts: [${host}]
  http: [{ route: [{ destination: { host: ${dest} } }] }]
`;

  it('short names stay short; cluster FQDNs are shortened', () => {
    const { services } = fromIstio(
      vs('reviews.default.svc.cluster.local', 'ratings.default.svc.cluster.local'),
    );
    expect(Object.keys(services)).toEqual(['reviews']);
    expect(services.reviews!.http![0]).toEqual({ route: [{ destination: { host: 'ratings' } }] });
  });

  it('fqdn: true expands short names with the document namespace and keeps FQDNs', () => {
    const { services } = fromIstio(vs('reviews', 'ratings.other.svc.cluster.local', 'shop'), { fqdn: true });
    expect(Object.keys(services)).toEqual(['reviews.shop.svc.cluster.local']);
    expect(services['reviews.shop.svc.cluster.local']!.http![0]).toEqual({
      route: [{ destination: { host: 'ratings.other.svc.cluster.local' } }],
    });
    expect(Object.keys(fromIstio(vs('reviews', 'reviews'), { fqdn: true, namespace: 'x' }).services)).toEqual(
      ['reviews.x.svc.cluster.local'],
    );
  });

  it('namespace: an FQDN in another namespace is reported, not silently shortened', () => {
    const err = unsupported(() =>
      fromIstio(vs('reviews', 'ratings.other.svc.cluster.local'), { namespace: 'default' }),
    );
    expect(err.problems[0]!.path).toBe('VirtualService/r spec.http[0].route[0].destination.host');
  });

  it('external hosts are kept as they are', () => {
    expect(Object.keys(fromIstio(vs('httpbin.org', 'httpbin.org')).services)).toEqual(['httpbin.org']);
  });
});

describe('fromIstio non-strict never widens a match', () => {
  it('a match block emptied by skipped conditions is dropped, and a route left without blocks too', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: { "@request.auth.claims.group": { exact: admin } }
    route: [{ destination: { host: reviews, subset: v2 } }]
  - match:
    - headers: { "@request.auth.claims.group": { exact: admin } }
    - headers: { end-user: { exact: jason } }
    route: [{ destination: { host: reviews, subset: v3 } }]
  - route: [{ destination: { host: reviews, subset: v1 } }]
`;
    const warned: string[] = [];
    const { services } = fromIstio(yaml, { strict: false, warn: (m) => warned.push(m) });
    expect(services.reviews!.http).toEqual([
      {
        match: [{ headers: { 'end-user': { exact: 'jason' } } }],
        route: [{ destination: { host: 'reviews', subset: 'v3' } }],
      },
      { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
    ]);
    expect(warned.some((w) => w.includes('spec.http[0].match: lost every match block'))).toBe(true);
    validated(services);
  });
});

describe('fromIstio AuthorizationPolicy (security.istio.io)', () => {
  const policy = (name: string, spec: string, extra = '') => `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: default${extra}
spec:
${spec}`;
  const evaluate = (authorization: unknown) => {
    const { policies } = authorizationSchema.parse(authorization);
    return (principal: string | undefined, method: string, path: string) =>
      authorize(policies, { principal, method, path }).allowed;
  };

  it("converts ALLOW and DENY rules (Istio's documented example shapes) and enforces them", () => {
    const result = fromIstio([
      policy(
        'allow-read',
        `  action: ALLOW
  rules:
    - from:
        - source:
            principals: ["cluster.local/ns/default/sa/sleep"]
      to:
        - operation:
            methods: ["GET"]
            paths: ["/info*"]`,
      ),
      policy(
        'deny-delete',
        `  action: DENY
  rules:
    - to:
        - operation:
            methods: ["DELETE"]`,
      ),
    ]);
    expect(result.services).toEqual({});
    expect(result.authorization).toEqual({
      policies: [
        {
          name: 'allow-read',
          action: 'ALLOW',
          rules: [
            {
              from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }],
              to: [{ operation: { methods: ['GET'], paths: ['/info*'] } }],
            },
          ],
        },
        { name: 'deny-delete', action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] },
      ],
    });
    const allowed = evaluate(result.authorization);
    expect(allowed('spiffe://cluster.local/ns/default/sa/sleep', 'GET', '/info/1')).toBe(true);
    expect(allowed('spiffe://cluster.local/ns/default/sa/sleep', 'POST', '/info/1')).toBe(false);
    expect(allowed('spiffe://cluster.local/ns/default/sa/other', 'GET', '/info/1')).toBe(false);
    expect(allowed(undefined, 'GET', '/info/1')).toBe(false);
  });

  it('an empty spec is an ALLOW policy that allows nothing (Istio: deny all)', () => {
    const result = fromIstio(policy('deny-all', '  {}'));
    expect(result.authorization?.policies).toEqual([{ name: 'deny-all', action: 'ALLOW' }]);
    expect(evaluate(result.authorization)('spiffe://x/ns/a/sa/b', 'GET', '/')).toBe(false);
  });

  it('a selector keeps or leaves out the policy by workloadLabels; without them it is reported', () => {
    const yaml = policy(
      'travels-only',
      `  selector:
    matchLabels:
      app: travels
  action: DENY
  rules:
    - to: [{ operation: { methods: ["POST"] } }]`,
    );
    expect(
      fromIstio(yaml, { workloadLabels: { app: 'travels', version: 'v1' } }).authorization?.policies,
    ).toHaveLength(1);
    expect(fromIstio(yaml, { workloadLabels: { app: 'hotels' } }).authorization).toBeUndefined();
    const err = unsupported(() => fromIstio(yaml));
    expect(err.problems.map((p) => p.path)).toEqual(['AuthorizationPolicy/travels-only spec.selector']);
    expect(err.message).toContain('workloadLabels');
  });

  it('non-strict mode fails closed: an ALLOW rule it cannot carry is left out, a DENY rule matches everything', () => {
    const yaml = [
      policy(
        'allow-ns',
        `  action: ALLOW
  rules:
    - from: [{ source: { namespaces: ["frontend"] } }]
    - from: [{ source: { principals: ["cluster.local/ns/edge/sa/gateway"] } }]`,
      ),
      policy(
        'deny-when',
        `  action: DENY
  rules:
    - to: [{ operation: { methods: ["DELETE"] } }]
      when:
        - key: request.auth.claims[iss]
          values: ["https://evil.example"]`,
      ),
    ];
    const err = unsupported(() => fromIstio(yaml));
    expect(err.problems.map((p) => p.path)).toEqual([
      'AuthorizationPolicy/allow-ns spec.rules[0].from[0].source.namespaces',
      'AuthorizationPolicy/deny-when spec.rules[0].when',
    ]);
    const warned: string[] = [];
    const result = fromIstio(yaml, { strict: false, warn: (m) => warned.push(m) });
    expect(warned[0]).toContain('this ALLOW rule is left out');
    expect(warned[1]).toContain('this DENY rule matches every request');
    expect(result.authorization?.policies).toEqual([
      {
        name: 'allow-ns',
        action: 'ALLOW',
        rules: [{ from: [{ source: { principals: ['cluster.local/ns/edge/sa/gateway'] } }] }],
      },
      { name: 'deny-when', action: 'DENY', rules: [{}] },
    ]);
    // The frontend namespace is not let in by a dropped condition; the DENY now refuses all.
    const allowed = evaluate(result.authorization);
    expect(allowed('spiffe://cluster.local/ns/frontend/sa/web', 'GET', '/')).toBe(false);
    expect(allowed('spiffe://cluster.local/ns/edge/sa/gateway', 'GET', '/')).toBe(false);
  });

  it('AUDIT is left out and CUSTOM is enforced as a DENY of its rules in non-strict mode; an unknown selector keeps an ALLOW allowing nothing', () => {
    const yaml = [
      policy('audit', '  action: AUDIT\n  rules: [{}]'),
      policy(
        'ext',
        '  action: CUSTOM\n  provider: { name: opa }\n  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]',
      ),
      policy('sel', '  selector: { matchLabels: { app: x } }\n  rules: [{}]'),
    ];
    const err = unsupported(() => fromIstio(yaml));
    expect(err.problems.map((p) => p.path)).toEqual([
      'AuthorizationPolicy/audit spec.action',
      'AuthorizationPolicy/ext spec.provider',
      'AuthorizationPolicy/ext spec.action',
      'AuthorizationPolicy/sel spec.selector',
    ]);
    const result = fromIstio(yaml, { strict: false });
    expect(result.authorization?.policies).toEqual([
      { name: 'ext', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
      { name: 'sel', action: 'ALLOW', rules: [] },
    ]);
  });
});

describe('fromIstio: hostile hosts and keys', () => {
  const dr = (host: string, extra = '') => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: x }
spec:
  host: ${host}
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }
  subsets: [{ name: v1, labels: { version: v1 } }]${extra}
`;
  const vs = (host: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: r }
spec:
  hosts: [${host}]
  http: [{ route: [{ destination: { host: reviews } }] }]
`;
  const snapshot = () =>
    [Object.prototype, Array.prototype, Function.prototype, Object, Function.prototype.toString].map((o) =>
      Object.getOwnPropertyNames(o).sort(),
    );
  const before = snapshot();

  /** The issues of a MeshworkConfigError thrown by fn (fails the test otherwise). */
  const configIssues = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      expect(isMeshworkError(err, 'MESHWORK_ERR_CONFIG'), String(err)).toBe(true);
      return (err as MeshworkConfigError).issues.map((i) => `${i.path}: ${i.message}`);
    }
    throw new Error('expected a MeshworkConfigError');
  };

  it.each([
    ['__proto__', 'underscores'],
    ['toString', 'lowercase'],
    ['hasOwnProperty', 'lowercase'],
    ['"a*b"', 'wildcard'],
    ['"reviews..default"', 'label'],
    ['"-reviews"', 'label'],
  ])('DestinationRule host %s is a config error naming the path and value, in both modes', (host, why) => {
    for (const strict of [true, false]) {
      const found = configIssues(() => fromIstio(dr(host), { strict }));
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(
        new RegExp(
          `^fromIstio DestinationRule/x spec\\.host: "${host.replaceAll('"', '').replace('*', '\\*')}" is not a valid host name`,
        ),
      );
      expect(found[0]).toContain(why);
    }
    expect(snapshot()).toEqual(before);
    expect({} as Record<string, unknown>).not.toHaveProperty('subsets');
  });

  it('VirtualService hosts and destination hosts are checked the same way', () => {
    expect(configIssues(() => fromIstio(vs('__proto__')))).toEqual([
      'fromIstio VirtualService/r spec.hosts[0]: "__proto__" is not a valid host name (lowercase DNS labels: a-z, 0-9 and "-", no underscores)',
    ]);
    // An IP address is valid Istio: reported as unsupported, not as invalid input.
    expect(unsupported(() => fromIstio(vs('"::1"'))).problems.map((p) => p.path)).toEqual([
      'VirtualService/r spec.hosts[0]',
    ]);
    expect(
      configIssues(() =>
        fromIstio(vs('reviews').replace('destination: { host: reviews }', 'destination: { host: toString }')),
      ),
    ).toEqual([
      'fromIstio VirtualService/r spec.http[0].route[0].destination.host: "toString" is not a valid host name (lowercase DNS labels: a-z, 0-9 and "-"; meshwork service names are lowercase)',
    ]);
    expect(snapshot()).toEqual(before);
  });

  it('a host named constructor is an ordinary service: nothing global is touched', () => {
    const result = fromIstio([dr('constructor'), vs('constructor')]);
    expect(Object.keys(result.services)).toEqual(['constructor']);
    expect(Object.hasOwn(result.services, 'constructor')).toBe(true);
    expect(result.services.constructor).toEqual({
      subsets: [{ name: 'v1', labels: { version: 'v1' } }],
      trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } },
      http: [{ route: [{ destination: { host: 'reviews' } }] }],
    });
    expect(fromIstio(vs('reviews')).services).not.toHaveProperty('constructor');
    expect((Object as unknown as Record<string, unknown>).subsets).toBeUndefined();
    expect(snapshot()).toEqual(before);
  });

  it('a "__proto__" YAML key is a config error naming its path, in both modes', () => {
    const cases = [
      ['spec.__proto__', dr('reviews', '\n  __proto__: { a: 1 }')],
      [
        'spec.subsets[0].labels.__proto__',
        dr('reviews').replace('labels: { version: v1 }', 'labels: { version: v1, __proto__: x }'),
      ],
      [
        'metadata.__proto__',
        dr('reviews').replace('metadata: { name: x }', 'metadata: { name: x, __proto__: y }'),
      ],
    ];
    for (const [path, yaml] of cases) {
      for (const strict of [true, false]) {
        expect(configIssues(() => fromIstio(yaml as string, { strict }))).toEqual([
          `fromIstio document 1 ${path}: "__proto__" is a reserved name and cannot be used as a key`,
        ]);
      }
    }
    expect(snapshot()).toEqual(before);
  });

  it.each(['constructor', 'toString', 'hasOwnProperty', 'valueOf'])(
    'a %s: field is a config error in both modes, never a TypeError and never kept',
    (key) => {
      for (const yaml of [
        dr('reviews', `\n  ${key}: { a: 1 }`),
        dr('reviews').replace('simple: ROUND_ROBIN', `simple: ROUND_ROBIN, ${key}: x`),
        `${dr('reviews')}${key}: 1\n`,
      ]) {
        for (const strict of [true, false]) {
          const found = configIssues(() => fromIstio(yaml, { strict }));
          expect(found).toHaveLength(1);
          expect(found[0]).toMatch(
            new RegExp(
              `^fromIstio DestinationRule/x (spec\\.|spec\\.trafficPolicy\\.loadBalancer\\.)?${key}: is not an Istio field`,
            ),
          );
        }
      }
      expect(snapshot()).toEqual(before);
    },
  );

  it('in maps (labels, headers, matchLabels) constructor, toString and hasOwnProperty are ordinary keys', () => {
    const yaml = `${dr('reviews').replace('labels: { version: v1 }', 'labels: { constructor: a, toString: b, hasOwnProperty: c }')}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: r }
spec:
  hosts: [reviews]
  http:
  - match: [{ headers: { constructor: { exact: x } } }]
    headers: { request: { set: { constructor: y } } }
    route: [{ destination: { host: reviews } }]
`;
    const { services } = fromIstio(yaml);
    expect(services.reviews?.subsets?.[0]?.labels).toEqual({
      constructor: 'a',
      toString: 'b',
      hasOwnProperty: 'c',
    });
    expect(services.reviews?.http?.[0]).toEqual({
      match: [{ headers: { constructor: { exact: 'x' } } }],
      headers: { request: { set: { constructor: 'y' } } },
      route: [{ destination: { host: 'reviews' } }],
    });
    const policy = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: p }
spec:
  selector: { matchLabels: { constructor: x } }
  rules: [{}]
`;
    expect(fromIstio(policy, { workloadLabels: {} }).authorization).toBeUndefined();
    expect(fromIstio(policy, { workloadLabels: { constructor: 'x' } }).authorization?.policies).toHaveLength(
      1,
    );
    expect(snapshot()).toEqual(before);
  });

  it('YAML that cannot be turned into values (unknown alias, alias bomb) is a config error', () => {
    const bomb = [
      'a: &a [x,x,x,x,x,x,x,x,x,x]',
      ...'bcde'.split('').map((c, i) => {
        const prev = 'abcd'[i];
        return `${c}: &${c} [${Array(10).fill(`*${prev}`).join(',')}]`;
      }),
    ].join('\n');
    for (const text of ['a: *nope\n', bomb]) {
      expect(configIssues(() => fromIstio(text))[0]).toMatch(/^fromIstio document 1: is not valid YAML/);
    }
  });
});
