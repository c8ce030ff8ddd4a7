/**
 * Small loopback proxies that can simulate a registry outage in front of a real component:
 * `down()` cuts every connection (TCP) or drops every packet (UDP), `up()` restores it on the
 * same port.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly #target: { host: string; port: number };
  #server: Server | undefined;
  #port = 0;
  #sockets = new Set<Socket>();

  constructor(target: { host: string; port: number }) {
    this.#target = target;
  }

  get port(): number {
    return this.#port;
  }

  async up(): Promise<this> {
    const server = createServer((client) => {
      const upstream = connect(this.#target.port, this.#target.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    return this;
  }

  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A UDP DNS forwarder: queries go to the target, answers come back, unless it is down. */
export class UdpProxy {
  readonly #target: { host: string; port: number };
  #front: UdpSocket | undefined;
  #back: UdpSocket | undefined;
  #pending = new Map<number, { address: string; port: number }>();
  dropping = false;

  constructor(target: { host: string; port: number }) {
    this.#target = target;
  }

  get port(): number {
    if (!this.#front) throw new Error('UdpProxy not started');
    return (this.#front.address() as AddressInfo).port;
  }

  async start(): Promise<this> {
    const front = createSocket('udp4');
    const back = createSocket('udp4');
    front.on('message', (msg, rinfo) => {
      if (this.dropping || msg.length < 2) return;
      this.#pending.set(msg.readUInt16BE(0), { address: rinfo.address, port: rinfo.port });
      back.send(msg, this.#target.port, this.#target.host);
    });
    back.on('message', (msg) => {
      if (this.dropping || msg.length < 2) return;
      const to = this.#pending.get(msg.readUInt16BE(0));
      if (to) front.send(msg, to.port, to.address);
    });
    await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve) => back.bind(0, '127.0.0.1', () => resolve()));
    this.#front = front;
    this.#back = back;
    return this;
  }

  async close(): Promise<void> {
    await Promise.all(
      [this.#front, this.#back].map((s) => (s ? new Promise<void>((r) => s.close(() => r())) : undefined)),
    );
  }
}
