// The partner's east-west gateway for `npm run demo -- --partner-mesh`: a TLS passthrough proxy
// that reads the SNI of each connection's ClientHello and passes the still-encrypted bytes to the
// workload that SNI names, as Istio's AUTO_PASSTHROUGH gateway does. It never holds a key: the
// TLS session is between the caller and the workload. An SNI it does not know: connection closed.
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

/** The SNI host name in a TLS ClientHello record, undefined if absent; null while incomplete. */
export function sniOf(buf: Buffer): string | undefined | null {
  if (buf.length < 5) return null;
  if (buf[0] !== 0x16) return undefined; // not a TLS handshake record
  const recordEnd = 5 + buf.readUInt16BE(3);
  if (buf.length < recordEnd) return null;
  let p = 5;
  if (buf[p] !== 0x01) return undefined; // not a ClientHello
  p += 4 + 2 + 32; // handshake header, client version, random
  p += 1 + (buf[p] ?? 0); // session id
  p += 2 + buf.readUInt16BE(p); // cipher suites
  p += 1 + (buf[p] ?? 0); // compression methods
  if (p + 2 > recordEnd) return undefined;
  const extEnd = p + 2 + buf.readUInt16BE(p);
  p += 2;
  while (p + 4 <= Math.min(extEnd, recordEnd)) {
    const type = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    if (type === 0x0000) {
      // server_name: list length, then (type 0 = host_name, length, name)
      const nameLen = buf.readUInt16BE(p + 7);
      return buf.toString('latin1', p + 9, p + 9 + nameLen);
    }
    p += 4 + len;
  }
  return undefined;
}

export interface SniGateway {
  port: number;
  /** Connections passed through, by SNI; refused ones under '(refused)'. */
  passed: Record<string, number>;
  close(): Promise<void>;
}

export async function startSniGateway(routes: Record<string, string>): Promise<SniGateway> {
  const passed: Record<string, number> = {};
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    let buf = Buffer.alloc(0);
    // Every wait has a bound: a ClientHello within 5 s and 16 KiB, or the connection goes.
    const timer = setTimeout(() => client.destroy(), 5_000);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const sni = buf.length > 16_384 ? undefined : sniOf(buf);
      if (sni === null) return;
      client.off('data', onData);
      client.pause(); // until the workload's connection is up (pipe resumes it)
      clearTimeout(timer);
      const target = sni === undefined ? undefined : routes[sni];
      if (target === undefined) {
        passed['(refused)'] = (passed['(refused)'] ?? 0) + 1;
        client.destroy();
        return;
      }
      passed[sni as string] = (passed[sni as string] ?? 0) + 1;
      const [host, port] = target.split(':');
      const upstream = connect({ host, port: Number(port) }, () => {
        upstream.write(buf);
        client.pipe(upstream).pipe(client);
      });
      sockets.add(upstream);
      upstream.on('close', () => {
        sockets.delete(upstream);
        client.destroy();
      });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    };
    client.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    passed,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
