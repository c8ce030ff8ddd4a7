/**
 * The test control plane is faithful: @grpc/grpc-js-xds, a real xDS client nobody here wrote,
 * resolves a gRPC target through it (LDS → RDS → CDS → EDS over ADS), routes real calls to the
 * backends it names, ACKs what it accepts, NACKs what it refuses, and follows a weight change.
 */
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiListener,
  edsCluster,
  loadAssignment,
  routeConfig,
  weightedRoute,
  XdsControlPlane,
} from './support/xds-control-plane.ts';

const require = createRequire(import.meta.url);

/** A gRPC server whose one unary method answers with its own name (raw bytes, no .proto). */
async function namedGrpcServer(name: string): Promise<{ port: number; close(): void }> {
  const server = new grpc.Server();
  server.addService(
    {
      Who: {
        path: '/test.Echo/Who',
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    } as grpc.ServiceDefinition,
    {
      Who: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)),
    } as grpc.UntypedServiceImplementation,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, close: () => server.forceShutdown() };
}

function who(client: grpc.Client): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      '/test.Echo/Who',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      { deadline: Date.now() + 5_000 },
      (err, res) => (err ? reject(err) : resolve((res as Buffer).toString())),
    ),
  );
}

describe('the test control plane, checked by @grpc/grpc-js-xds', () => {
  let cp: XdsControlPlane;
  let blue: { port: number; close(): void };
  let green: { port: number; close(): void };
  let client: grpc.Client;

  beforeAll(async () => {
    [cp, blue, green] = await Promise.all([
      XdsControlPlane.start(),
      namedGrpcServer('blue'),
      namedGrpcServer('green'),
    ]);
    cp.set('listener', [apiListener('echo', 'echo-routes')]);
    cp.set('route', [routeConfig('echo-routes', [weightedRoute({ blue: 100, green: 0 }, '')])]);
    cp.set('cluster', [edsCluster('blue'), edsCluster('green')]);
    cp.set('endpoint', [
      loadAssignment('blue', [{ endpoints: [{ address: '127.0.0.1', port: blue.port }] }]),
      loadAssignment('green', [{ endpoints: [{ address: '127.0.0.1', port: green.port }] }]),
    ]);
    require('@grpc/grpc-js-xds').register();
    const bootstrap = {
      xds_servers: [
        { server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
      ],
      node: { id: 'grpc-js-xds-check', locality: { zone: 'zone-a' } },
    };
    client = new grpc.Client('xds:///echo', grpc.credentials.createInsecure(), {
      'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(bootstrap),
    });
  });

  afterAll(async () => {
    client?.close();
    blue?.close();
    green?.close();
    await cp?.close();
  });

  it('resolves listener, routes, clusters and endpoints over ADS and routes a call', async () => {
    expect(await who(client)).toBe('blue');
    // Every type was subscribed by name and ACKed at the version the control plane holds.
    expect(cp.subscribed('listener')).toEqual(new Set(['echo']));
    expect(cp.subscribed('route')).toEqual(new Set(['echo-routes']));
    expect(cp.subscribed('cluster')).toEqual(new Set(['blue', 'green']));
    expect(cp.subscribed('endpoint')).toEqual(new Set(['blue', 'green']));
    for (const kind of ['listener', 'route', 'cluster', 'endpoint'] as const) await cp.waitForAck(kind);
    expect(cp.nacks).toEqual([]);
    // The node is sent on the stream's first request.
    expect(cp.requests.find((r) => r.node)?.node).toMatchObject({ id: 'grpc-js-xds-check' });
  });

  it('follows a weight change pushed by the control plane', async () => {
    cp.set('route', [routeConfig('echo-routes', [weightedRoute({ blue: 0, green: 100 }, '')])]);
    await cp.waitForAck('route');
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) seen.push(await who(client));
    expect(
      seen.every((s) => s === 'green'),
      seen.join(','),
    ).toBe(true);
  });

  it('NACKs a resource it refuses, with error_detail, and keeps serving the last good one', async () => {
    const before = cp.nacks.length;
    // grpc-js-xds 1.14.1 refuses lb_policy RANDOM ("unsupported lb_policy").
    cp.set('cluster', [edsCluster('blue'), edsCluster('green', { lb_policy: 'RANDOM' })]);
    const nack = await cp.waitForNack('cluster', before);
    expect(nack.error).toMatch(/unsupported lb_policy: RANDOM/);
    // gRPC (A46) keeps the valid resources of a NACKed response: "blue" is still there.
    expect(nack.nonce).not.toBe('');
    expect(await who(client)).toBe('green');
  });
});
