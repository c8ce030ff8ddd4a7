import { Duplex } from 'node:stream';

/**
 * One end of an in-memory connection: what `mesh.agent` hands node:http's client (and its own
 * request parser on the other end) in place of a TCP socket. Bytes written on one end are read
 * on the other, with backpressure (a write completes when the peer reads it); ending one end
 * ends the peer's readable side; destroying one end destroys the peer. It has the few methods
 * node:http calls on a net.Socket (setTimeout with real inactivity timeouts, setNoDelay,
 * setKeepAlive, ref/unref, address), so clients' own timeouts (`req.setTimeout`, axios
 * `timeout`) work as over TCP.
 */
export class MemorySocket extends Duplex {
  /** The other end. */
  peer!: MemorySocket;
  /** The mesh origin this connection is for (`http://travels:8080`), on both ends. */
  readonly origin: string;
  /** node:http reads these off a socket. */
  readonly connecting = false;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 0;
  readonly remoteFamily = 'IPv4';
  readonly localAddress = '127.0.0.1';
  readonly localPort = 0;
  /** Set per request on the client end: runs the mesh dispatch in the caller's async context. */
  run: (<R>(fn: () => R) => R) | undefined;
  #pendingWrite: ((err?: Error | null) => void) | undefined;
  #timeoutMs = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(origin: string) {
    super({ allowHalfOpen: true });
    this.origin = origin;
  }

  /** A connected pair: [client end, server end]. */
  static pair(origin: string): [MemorySocket, MemorySocket] {
    const a = new MemorySocket(origin);
    const b = new MemorySocket(origin);
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#active();
    const peer = this.peer;
    if (peer.destroyed) {
      callback(Object.assign(new Error('write after the other end closed'), { code: 'EPIPE' }));
      return;
    }
    peer.#active();
    if (peer.push(chunk)) callback();
    else this.#pendingWrite = callback;
  }

  override _read(): void {
    const peer = this.peer;
    const cb = peer === undefined ? undefined : peer.#pendingWrite;
    if (cb) {
      peer.#pendingWrite = undefined;
      cb();
    }
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = this.#pendingWrite;
    this.#pendingWrite = undefined;
    pending?.(err ?? null);
    const peer = this.peer;
    if (peer && !peer.destroyed) peer.destroy();
    callback(err);
  }

  /** net.Socket's destroySoon: end, then destroy once everything is written. */
  destroySoon(): void {
    this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Idle timeout as net.Socket has it: 'timeout' after `ms` without reads or writes (0 = off). */
  setTimeout(ms: number, callback?: () => void): this {
    this.#timeoutMs = ms;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (ms > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.emit('timeout');
      }, ms);
      this.#timer.unref();
      if (callback) this.once('timeout', callback);
    } else if (callback) this.removeListener('timeout', callback);
    return this;
  }

  get timeout(): number | undefined {
    return this.#timeoutMs || undefined;
  }

  #active(): void {
    this.#timer?.refresh();
  }

  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  setKeepAlive(_enable?: boolean, _delay?: number): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  address(): { address: string; family: string; port: number } {
    return { address: this.localAddress, family: 'IPv4', port: 0 };
  }
}
