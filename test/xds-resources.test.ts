/**
 * Envoy resources → meshwork, one resource at a time: resources encoded from Envoy's own .proto
 * files (test/support/xds-control-plane.ts), decoded with meshwork's compiled descriptor.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pickVirtualHost } from '../src/xds/assemble.ts';
import { parseBootstrap } from '../src/xds/bootstrap.ts';
import { Codec } from '../src/xds/codec.ts';
import { ServiceNames, sanitize } from '../src/xds/names.ts';
import {
  type ClusterModel,
  decodeResource,
  type EndpointsModel,
  endpointSpecs,
  type Kind,
  type ListenerModel,
  type RouteConfigModel,
  toPercents,
  type VirtualHostModel,
} from '../src/xds/resources.ts';
import {
  apiListener,
  edsCluster,
  loadAssignment,
  pack,
  routeConfig,
  routerFilter,
  TYPE_URL,
} from './support/xds-control-plane.ts';

const codec = new Codec();
const bootstrap = parseBootstrap(
  {
    xds_servers: [{ server_uri: 'x:1', channel_creds: [{ type: 'insecure' }] }],
    certificate_providers: {
      default: {
        plugin_name: 'file_watcher',
        config: { certificate_file: '/c.pem', private_key_file: '/k.pem', ca_certificate_file: '/ca.pem' },
      },
      other: {
        plugin_name: 'file_watcher',
        config: { certificate_file: '/o.pem', private_key_file: '/ok.pem', ca_certificate_file: '/oca.pem' },
      },
    },
  },
  { label: 'xds.bootstrap', source: 'test' },
);
const ctx = { codec, bootstrap, identityProvider: 'default' };

const RESOURCE: Record<Kind, string> = {
  listener: 'envoy.config.listener.v3.Listener',
  route: 'envoy.config.route.v3.RouteConfiguration',
  cluster: 'envoy.config.cluster.v3.Cluster',
  endpoint: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
};

function decode(kind: Kind, resource: object) {
  const any = pack(RESOURCE[kind], resource);
  expect(any.type_url).toBe(TYPE_URL[kind]);
  return decodeResource(kind, any, ctx);
}

const route = (r: object) => {
  const d = decode('route', routeConfig('r', [r]));
  return { ...d, route: (d.model as RouteConfigModel | undefined)?.virtualHosts[0]?.routes[0] };
};

describe('RDS → http routes', () => {
  it('matches: prefix, path, regex, headers (suffix, present, inverted, :method), query, case', () => {
    const { route: r, errors } = route({
      match: {
        prefix: '/api/',
        case_sensitive: { value: false },
        headers: [
          { name: 'X-Env', string_match: { suffix: '-canary' } },
          { name: 'x-debug', present_match: true, invert_match: true },
          { name: ':method', exact_match: 'POST' },
        ],
        query_parameters: [{ name: 'v', string_match: { exact: '2' } }],
      },
      route: { cluster: 'c' },
    });
    expect(errors).toEqual([]);
    expect(r?.http.match).toEqual([
      {
        uri: { prefix: '/api/' },
        ignoreUriCase: true,
        method: { exact: 'POST' },
        headers: { 'x-env': { regex: '.*-canary' } },
        withoutHeaders: { 'x-debug': {} },
        queryParams: { v: { exact: '2' } },
      },
    ]);
    expect(r?.http.route).toEqual([{ destination: { host: 'xds-cluster-ref-0' } }]);
    expect(r?.clusters).toEqual(['c']);
  });

  it('weighted clusters become whole percents summing to 100', () => {
    const { route: r } = route({
      match: { prefix: '/' },
      route: {
        weighted_clusters: {
          clusters: [
            { name: 'a', weight: { value: 1 } },
            { name: 'b', weight: { value: 2 } },
          ],
        },
      },
    });
    expect(((r?.http.route ?? []) as { weight: number }[]).map((d) => d.weight)).toEqual([33, 67]);
    expect(toPercents([1, 999], 1000)).toEqual([1, 99]);
    expect(toPercents([1, 1, 1], 3)).toEqual([34, 33, 33]);
    expect(toPercents([0, 5], 5)).toEqual([0, 100]);
  });

  it('retry policy: tokens meshwork implements, status codes, attempts, per-try timeout, backoff; none = no retries', () => {
    const { route: r, warnings } = route({
      match: { prefix: '/' },
      route: {
        cluster: 'c',
        retry_policy: {
          retry_on: '5xx,retriable-status-codes,envoy-ratelimited',
          retriable_status_codes: [409],
          num_retries: { value: 3 },
          per_try_timeout: { nanos: 250_000_000 },
          retry_back_off: { base_interval: { nanos: 10_000_000 }, max_interval: { seconds: 1 } },
        },
      },
    });
    expect(r?.http.retries).toEqual({
      attempts: 3,
      retryOn: ['5xx', 409],
      perTryTimeout: 250,
      backoff: 10,
      retryIgnorePreviousHosts: false,
    });
    expect(warnings.join('\n')).toMatch(/max_interval: 1000 ms: meshwork's largest backoff is 10 × the base/);
    expect(warnings.join('\n')).toMatch(/retry_on: "envoy-ratelimited" is not supported/);
    expect(route({ match: { prefix: '/' }, route: { cluster: 'c' } }).route?.http.retries).toEqual({
      attempts: 0,
    });
    // num_retries unset: Envoy's 1.
    expect(
      route({ match: { prefix: '/' }, route: { cluster: 'c', retry_policy: { retry_on: 'reset' } } }).route
        ?.http.retries,
    ).toEqual({ attempts: 1, retryOn: ['reset'], retryIgnorePreviousHosts: false });
  });

  it('timeouts, rewrites, header mutations (route, then virtual host, then configuration), hash policy, mirror', () => {
    const d = decode('route', {
      name: 'r',
      request_headers_to_add: [
        { header: { key: 'x-level', value: 'config' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      ],
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          request_headers_to_add: [{ header: { key: 'x-level', value: 'vhost' }, append: { value: false } }],
          routes: [
            {
              match: { prefix: '/old/' },
              route: {
                cluster: 'c',
                prefix_rewrite: '/new/',
                host_rewrite_literal: 'internal.example',
                timeout: { seconds: 2 },
                max_stream_duration: { max_stream_duration: { seconds: 1 } },
                hash_policy: [{ header: { header_name: 'X-User' } }],
                request_mirror_policies: [
                  { cluster: 'shadow', runtime_fraction: { default_value: { numerator: 10 } } },
                ],
              },
              request_headers_to_add: [
                { header: { key: 'x-level', value: 'route' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
                { header: { key: 'x-peer', value: '%DOWNSTREAM_REMOTE_ADDRESS%' } },
              ],
              request_headers_to_remove: ['x-internal'],
            },
          ],
        },
      ],
    });
    const r = (d.model as RouteConfigModel).virtualHosts[0]?.routes[0];
    expect(d.errors).toEqual([]);
    expect(r?.timeoutMs).toBe(2000);
    expect(r?.maxStreamDurationMs).toBe(1000);
    expect(r?.http.rewrite).toEqual({ uri: '/new/', authority: 'internal.example' });
    // Envoy applies route, then virtual host, then route configuration: the last `set` wins.
    expect(r?.http.headers).toEqual({ request: { set: { 'x-level': 'config' }, remove: ['x-internal'] } });
    expect(d.warnings.join('\n')).toMatch(/command operator: header left out/);
    expect(r?.hash).toEqual({ httpHeaderName: 'x-user' });
    expect(r?.http.mirror).toEqual({ host: 'xds-cluster-ref-1' });
    expect(r?.http.mirrorPercentage).toEqual({ value: 10 });
    expect(r?.clusters).toEqual(['c', 'shadow']);
  });

  it('regex_rewrite, redirect, direct_response and several mirrors: uriRegexRewrite, redirect, directResponse, mirrors', () => {
    const rw = route({
      match: { prefix: '/' },
      route: { cluster: 'c', regex_rewrite: { pattern: { regex: '^/v1/(.*)$' }, substitution: '/v2/\\1' } },
    });
    expect(rw.errors).toEqual([]);
    expect(rw.route?.http.rewrite).toEqual({ uriRegexRewrite: { match: '^/v1/(.*)$', rewrite: '/v2/\\1' } });
    const rd = route({
      match: { prefix: '/old' },
      redirect: {
        host_redirect: 'new.example',
        path_redirect: '/new',
        response_code: 'FOUND',
        https_redirect: true,
      },
    });
    expect(rd.errors).toEqual([]);
    expect(rd.route?.http.redirect).toEqual({
      uri: '/new',
      authority: 'new.example',
      scheme: 'https',
      redirectCode: 302,
    });
    expect(rd.route?.local).toBe(true);
    const dr = route({
      match: { prefix: '/gone' },
      direct_response: { status: 410, body: { inline_string: 'gone' } },
    });
    expect(dr.errors).toEqual([]);
    expect(dr.route?.http.directResponse).toEqual({ status: 410, body: { string: 'gone' } });
    const mm = route({
      match: { prefix: '/' },
      route: {
        cluster: 'c',
        request_mirror_policies: [
          { cluster: 'm1' },
          { cluster: 'm2', runtime_fraction: { default_value: { numerator: 5 } } },
        ],
      },
    });
    expect(mm.errors).toEqual([]);
    expect(mm.route?.http.mirrors).toEqual([
      { destination: { host: 'xds-cluster-ref-1' } },
      { destination: { host: 'xds-cluster-ref-2' }, percentage: { value: 5 } },
    ]);
  });

  it('refuses what it cannot do exactly, naming the resource and the field', () => {
    expect(
      route({
        match: { prefix: '/', headers: [{ name: 'x', range_match: { start: 1, end: 5 } }] },
        route: { cluster: 'c' },
      }).errors,
    ).toEqual([
      'RouteConfiguration "r": virtual_hosts[0].routes[0].match.headers[0].range_match: is not supported',
    ]);
    expect(
      route({
        match: { prefix: '/', runtime_fraction: { default_value: { numerator: 50 } } },
        route: { cluster: 'c' },
      }).errors[0],
    ).toMatch(/routes\[0\]\.match\.runtime_fraction: 50% is not supported/);
    expect(route({ match: { safe_regex: { regex: '(a' } }, route: { cluster: 'c' } }).errors[0]).toMatch(
      /RouteConfiguration "r": virtual_hosts\[0\]\.routes\[0\].*is not a usable regex/,
    );
    expect(route({ match: { prefix: '/' }, route: { cluster: 'c', metadata_match: {} } }).errors[0]).toMatch(
      /metadata_match/,
    );
    // 0%: the route is left out (it never matches), with a warning.
    const zero = route({
      match: { prefix: '/', runtime_fraction: { default_value: { numerator: 0 } } },
      route: { cluster: 'c' },
    });
    expect(zero.errors).toEqual([]);
    expect(zero.route).toBeUndefined();
  });

  it('virtual hosts: exact, then the longest suffix wildcard, prefix wildcard, then *', () => {
    const vh = (name: string, domains: string[]): VirtualHostModel => ({ name, domains, routes: [] });
    const hosts = [
      vh('any', ['*']),
      vh('suffix', ['*.svc.cluster.local']),
      vh('longer', ['*.default.svc.cluster.local']),
      vh('prefix', ['reviews.*']),
      vh('exact', ['reviews:9080']),
    ];
    expect(pickVirtualHost(hosts, 'reviews:9080')?.name).toBe('exact');
    expect(pickVirtualHost(hosts, 'reviews.default.svc.cluster.local')?.name).toBe('longer');
    expect(pickVirtualHost(hosts, 'reviews.other')?.name).toBe('prefix');
    expect(pickVirtualHost(hosts, 'x')?.name).toBe('any');
    expect(pickVirtualHost([vh('a', ['a'])], 'b')).toBeUndefined();
  });
});

describe('LDS', () => {
  it('an api_listener HCM with rds and [fault, router]', () => {
    const d = decode('listener', apiListener('svc:80', 'routes'));
    expect(d.errors).toEqual([]);
    expect(d.model as ListenerModel).toMatchObject({
      name: 'svc:80',
      rds: 'routes',
      faultFilter: 'envoy.filters.http.fault',
    });
  });

  it('an optional filter meshwork does not run is skipped; a required one refuses the listener', () => {
    const rbac = { name: 'rbac', typed_config: pack('envoy.extensions.filters.http.rbac.v3.RBAC', {}) };
    const optional = decode(
      'listener',
      apiListener('l', 'r', { filters: [{ ...rbac, is_optional: true }, routerFilter()] }),
    );
    expect(optional.errors).toEqual([]);
    expect(optional.warnings[0]).toMatch(/is optional: skipped/);
    const required = decode('listener', apiListener('l', 'r', { filters: [rbac, routerFilter()] }));
    expect(required.errors[0]).toMatch(
      /^Listener "l": api_listener\.http_connection_manager\.http_filters\[0\]: filter "rbac"/,
    );
    expect(
      decode('listener', { name: 'tcp', address: { socket_address: { address: '0.0.0.0', port_value: 80 } } })
        .errors[0],
    ).toMatch(/api_listener: is missing/);
  });
});

describe('CDS → trafficPolicy', () => {
  it('lb policy, outlier detection with Envoy defaults, circuit breakers, connect timeout', () => {
    const d = decode(
      'cluster',
      edsCluster('c', {
        lb_policy: 'LEAST_REQUEST',
        connect_timeout: { nanos: 500_000_000 },
        outlier_detection: {
          consecutive_5xx: { value: 3 },
          base_ejection_time: { seconds: 10 },
          enforcing_success_rate: { value: 0 },
        },
        circuit_breakers: {
          thresholds: [
            {
              max_connections: { value: 10 },
              max_requests: { value: 20 },
              max_pending_requests: { value: 5 },
            },
          ],
        },
        common_lb_config: { healthy_panic_threshold: { value: 0 } },
      }),
    );
    expect(d.errors).toEqual([]);
    const m = d.model as ClusterModel;
    expect(m.discovery).toEqual({ kind: 'eds', serviceName: 'c' });
    expect(m.trafficPolicy).toEqual({
      loadBalancer: { localityLbSetting: { enabled: false }, panicThreshold: 0, simple: 'LEAST_REQUEST' },
      outlierDetection: { consecutive5xxErrors: 3, baseEjectionTime: 10_000, enforcingSuccessRate: 0 },
      connectionPool: {
        tcp: { connectTimeout: 500, maxConnections: 10 },
        http: { http1MaxPendingRequests: 5, http2MaxRequests: 20 },
      },
    });
    expect((decode('cluster', edsCluster('d')).model as ClusterModel).trafficPolicy.outlierDetection).toEqual(
      { enabled: false },
    );
  });

  it('load_balancing_policy: the first policy meshwork supports; wrr_locality honours locality weights', () => {
    const LB = 'envoy.extensions.load_balancing_policies';
    const d = decode(
      'cluster',
      edsCluster('c', {
        load_balancing_policy: {
          policies: [
            {
              typed_extension_config: {
                name: 'x',
                typed_config: pack('xds.type.v3.TypedStruct', { type_url: 'custom' }),
              },
            },
            {
              typed_extension_config: {
                name: 'wrr',
                typed_config: pack(`${LB}.wrr_locality.v3.WrrLocality`, {
                  endpoint_picking_policy: {
                    policies: [
                      {
                        typed_extension_config: {
                          name: 'rh',
                          typed_config: pack(`${LB}.ring_hash.v3.RingHash`, {
                            minimum_ring_size: { value: 4096 },
                          }),
                        },
                      },
                    ],
                  },
                }),
              },
            },
          ],
        },
      }),
    );
    expect(d.errors).toEqual([]);
    const m = d.model as ClusterModel;
    expect(m.hash).toEqual({ kind: 'ring', minimumRingSize: 4096 });
    expect(m.localityWeighted).toBe(true);
  });

  it('UpstreamTlsContext: the identity provider is ISTIO_MUTUAL; another provider MUTUAL; SAN matchers exact only', () => {
    const tls = (common: object, extra: object = {}) =>
      decode(
        'cluster',
        edsCluster('c', {
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: pack('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', {
              common_tls_context: common,
              ...extra,
            }),
          },
        }),
      );
    const ctxFor = (instance: string, sans: object[]) => ({
      tls_certificate_provider_instance: { instance_name: instance },
      combined_validation_context: {
        default_validation_context: {
          match_subject_alt_names: sans,
          ca_certificate_provider_instance: { instance_name: instance },
        },
      },
    });
    const istio = tls(ctxFor('default', [{ exact: 'spiffe://cluster.local/ns/default/sa/reviews' }]), {
      sni: 'outbound_.9080_._.reviews',
    });
    expect((istio.model as ClusterModel).trafficPolicy.tls).toEqual({
      mode: 'ISTIO_MUTUAL',
      subjectAltNames: ['spiffe://cluster.local/ns/default/sa/reviews'],
      sni: 'outbound_.9080_._.reviews',
    });
    const other = tls(ctxFor('other', [{ exact: 'reviews.example' }]));
    expect((other.model as ClusterModel).trafficPolicy.tls).toEqual({
      mode: 'MUTUAL',
      subjectAltNames: ['reviews.example'],
      caCertificates: '/oca.pem',
      clientCertificate: '/o.pem',
      privateKey: '/ok.pem',
    });
    expect(tls(ctxFor('default', [{ prefix: 'spiffe://cluster.local/' }])).errors[0]).toMatch(
      /only exact matchers are supported/,
    );
    expect(tls(ctxFor('nope', [])).errors[0]).toMatch(
      /"nope" is not a certificate provider of the bootstrap \(default, other\)/,
    );
    expect(tls({ tls_certificate_sds_secret_configs: [{ name: 'default' }] }).errors[0]).toMatch(
      /SDS is not supported/,
    );
  });

  it('refuses cluster kinds and policies it cannot run', () => {
    expect(decode('cluster', edsCluster('c', { lb_policy: 'CLUSTER_PROVIDED' })).errors[0]).toMatch(
      /lb_policy: "CLUSTER_PROVIDED" is not supported/,
    );
    expect(decode('cluster', { name: 'o', type: 'ORIGINAL_DST' }).errors[0]).toMatch(
      /type: "ORIGINAL_DST" is not supported/,
    );
    expect(
      decode('cluster', edsCluster('c', { transport_socket_matches: [{ name: 'm' }] })).errors[0],
    ).toMatch(/transport_socket_matches/);
  });
});

describe('EDS → endpoints', () => {
  const model = (l: Parameters<typeof loadAssignment>[1]) =>
    decode('endpoint', loadAssignment('c', l)).model as EndpointsModel;

  it('the lowest priority with a usable endpoint; unusable health states left out', () => {
    const m = model([
      {
        priority: 0,
        endpoints: [
          { address: '10.0.0.1', port: 80, health: 'UNHEALTHY' },
          { address: '10.0.0.2', port: 80, health: 'DRAINING' },
        ],
      },
      {
        priority: 1,
        endpoints: [
          { address: '10.0.1.1', port: 80 },
          { address: '10.0.1.2', port: 80, health: 'UNKNOWN' },
        ],
      },
    ]);
    expect(endpointSpecs(m, false).map((e) => e.address)).toEqual(['10.0.1.1:80', '10.0.1.2:80']);
  });

  it('locality weights × endpoint weights when honoured; endpoint weights alone otherwise; IPv6', () => {
    const m = model([
      { zone: 'a', weight: 3, endpoints: [{ address: '10.0.0.1', port: 80 }] },
      {
        zone: 'b',
        weight: 1,
        endpoints: [
          { address: '10.0.0.2', port: 80, weight: 2 },
          { address: '::1', port: 80, weight: 2 },
        ],
      },
    ]);
    const weighted = endpointSpecs(m, true);
    expect(weighted.map((e) => [e.address, e.weight, e.zone])).toEqual([
      ['10.0.0.1:80', 7500, 'a'],
      ['10.0.0.2:80', 1250, 'b'],
      ['[::1]:80', 1250, 'b'],
    ]);
    expect(endpointSpecs(m, false).map((e) => e.weight)).toEqual([1, 2, 2]);
  });

  it('refuses an endpoint without a port', () => {
    expect(
      decode('endpoint', loadAssignment('c', [{ endpoints: [{ address: '10.0.0.1', port: 0 }] }])).errors[0],
    ).toMatch(
      /ClusterLoadAssignment "c": endpoints\[0\]\.lb_endpoints\[0\]\.endpoint\.address\.socket_address\.port_value/,
    );
  });
});

describe('the compiled Envoy descriptor', () => {
  it('is what scripts/build-xds-protos.mjs makes from the .proto files (not stale)', () => {
    const script = fileURLToPath(new URL('../scripts/build-xds-protos.mjs', import.meta.url));
    const out = execFileSync(process.execPath, [script, '--check'], { encoding: 'utf8', timeout: 60_000 });
    expect(out).toMatch(/is up to date/);
  });
});

describe('service names', () => {
  it('are DNS-style, stable, and never take a configured name or collide', () => {
    expect(sanitize('outbound|9080||reviews.default.svc.cluster.local')).toBe(
      'outbound-9080-reviews.default.svc.cluster.local',
    );
    expect(sanitize('reviews.default.svc.cluster.local:9080')).toBe('reviews.default.svc.cluster.local-9080');
    expect(sanitize('|||')).toBe('xds');
    const names = new ServiceNames(['svc']);
    const listener = names.listener('svc');
    expect(listener).toMatch(/^svc-[0-9a-f]{6}$/);
    const cluster = names.cluster('svc');
    expect(cluster).not.toBe(listener);
    expect(names.cluster('svc')).toBe(cluster);
    expect(names.listener('other')).toBe('other');
  });
});
