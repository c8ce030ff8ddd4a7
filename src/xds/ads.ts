/**
 * The ADS stream (Aggregated Discovery Service, state of the world) over @grpc/grpc-js, as the
 * xDS protocol and gRPC's client (gRFC A27, A46, A53, A57) define it:
 *
 *   - one bidirectional stream carries every type; per type, the client keeps the version it
 *     last accepted, the nonce it last received and the names it subscribes to, and every
 *     request for a type carries all three (the node is sent on a stream's first request);
 *   - a response is answered at once: an ACK (its version and nonce) when every resource in it
 *     was accepted, else a NACK (the last accepted version, its nonce, and error_detail listing
 *     each refused resource and why). Valid resources of a NACKed response are applied (A46);
 *   - LDS and CDS responses are complete: a resource received before and missing from one was
 *     deleted (unless the server has the `ignore_resource_deletion` feature, A53: the last one is
 *     kept); one never received is left to its timer (the response may answer an older request);
 *   - a subscribed resource that has not come within `resourceTimeoutMs` of being asked for on a
 *     working stream does not exist (A57's 15 s timer; it is not armed while disconnected);
 *   - a stream that ends is reopened: at once when it had received a response, otherwise after
 *     an exponential backoff (1 s, ×1.6, up to 120 s, ±20 % jitter, gRPC's connection backoff).
 *     Resources already received keep serving through the outage.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../telemetry/logger.ts';
import type { Bootstrap } from './bootstrap.ts';
import { type AnyMessage, type Codec, toStruct, typeUrlName } from './codec.ts';
import { type Decoded, KINDS, type Kind, kindOfTypeUrl, type Model, typeUrlOf } from './resources.ts';
import { XDS_DEFAULTS } from './schema.ts';

const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
const REQUEST = 'envoy.service.discovery.v3.DiscoveryRequest';
const RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse';
const RESOURCE_WRAPPER = 'envoy.service.discovery.v3.Resource';
/** google.rpc.Code INVALID_ARGUMENT, for error_detail. */
const INVALID_ARGUMENT = 3;
/** A longer error_detail is cut (the control plane logs it). */
const MAX_DETAIL = 4096;

/** The parts of @grpc/grpc-js used here. */
export interface GrpcJs {
  Client: new (target: string, creds: unknown, options?: object) => GrpcClient;
  credentials: {
    createInsecure(): unknown;
    createSsl(root?: Buffer | null, key?: Buffer | null, cert?: Buffer | null): unknown;
  };
  Metadata: new () => unknown;
}
interface GrpcClient {
  makeBidiStreamRequest(
    path: string,
    serialize: (v: Uint8Array) => Buffer,
    deserialize: (b: Buffer) => Uint8Array,
    metadata: unknown,
    options?: object,
  ): GrpcStream;
  close(): void;
}
interface GrpcStream {
  write(msg: Uint8Array): boolean;
  end(): void;
  cancel(): void;
  on(event: 'data', fn: (m: Uint8Array) => void): void;
  on(event: 'error', fn: (e: Error & { code?: number; details?: string }) => void): void;
  on(event: 'status' | 'end', fn: (s?: unknown) => void): void;
}

export interface AdsHandlers {
  decode(kind: Kind, any: AnyMessage): Decoded;
  /** Resources of one type changed (or, `removed`, no longer exist). Called once per response. */
  onChange(kind: Kind, updated: ReadonlyMap<string, Model>, removed: readonly string[]): void;
  /** Refused resources (a NACK went out); the last good ones keep serving. */
  onRefused?(kind: Kind, errors: readonly string[]): void;
}

export interface AdsOptions {
  grpc: GrpcJs;
  codec: Codec;
  bootstrap: Bootstrap;
  logger: Logger;
  resourceTimeoutMs: number;
  /** Package version, sent as the node's user_agent_version. */
  version: string;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  random?: () => number;
}

interface TypeState {
  names: Set<string>;
  version: string;
  nonce: string;
  /** Raw bytes of each resource last accepted — the names with a value. */
  known: Map<string, Uint8Array>;
  /** The same bytes (as latin1 strings) → name: an unchanged resource is recognised without decoding it. */
  byBytes: Map<string, string>;
  /** Names asked for whose does-not-exist timer runs. */
  timers: Map<string, NodeJS.Timeout>;
  /** Names known not to exist. */
  missing: Set<string>;
  lastNack?: { at: string; version: string; nonce: string; errors: string[] } | undefined;
  acks: number;
  nacks: number;
}

/** `mesh.snapshot().xds.server`. */
export interface AdsStatus {
  server: string;
  state: 'connecting' | 'connected' | 'backoff' | 'closed';
  /** Streams opened since createMesh (reconnections count). */
  streams: number;
  responses: number;
  lastError?: string | undefined;
  connectedAt?: string | undefined;
  types: Record<
    string,
    {
      version: string;
      nonce: string;
      subscribed: number;
      acks: number;
      nacks: number;
      missing: string[];
      lastNack?: { at: string; version: string; nonce: string; errors: string[] } | undefined;
    }
  >;
}

export class AdsClient {
  readonly #o: AdsOptions;
  readonly #h: AdsHandlers;
  readonly #types = new Map<Kind, TypeState>();
  #client: GrpcClient | undefined;
  #stream: GrpcStream | undefined;
  /** The current stream has delivered a response (A57: then it is reopened without backoff). */
  #answered = false;
  #nodeSent = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #backoffMs: number;
  #closed = false;
  readonly #dirty = new Set<Kind>();
  #flushing = false;
  #status: AdsStatus;

  constructor(opts: AdsOptions, handlers: AdsHandlers) {
    this.#o = opts;
    this.#h = handlers;
    this.#backoffMs = opts.backoffBaseMs ?? XDS_DEFAULTS.backoffBaseMs;
    for (const k of KINDS)
      this.#types.set(k, {
        names: new Set(),
        version: '',
        nonce: '',
        known: new Map(),
        byBytes: new Map(),
        timers: new Map(),
        missing: new Set(),
        acks: 0,
        nacks: 0,
      });
    this.#status = {
      server: opts.bootstrap.server.uri,
      state: 'connecting',
      streams: 0,
      responses: 0,
      types: {},
    };
  }

  /** Subscribes to a resource (once per name; the stream starts on the first one). */
  watch(kind: Kind, name: string): void {
    const t = this.#type(kind);
    if (t.names.has(name)) return;
    t.names.add(name);
    this.#changed(kind);
  }

  unwatch(kind: Kind, name: string): void {
    const t = this.#type(kind);
    if (!t.names.delete(name)) return;
    this.#clearTimer(t, name);
    this.#forget(t, name);
    t.missing.delete(name);
    this.#changed(kind);
  }

  /** Subscription changes made in one turn go out as one request per type. */
  #changed(kind: Kind): void {
    this.#dirty.add(kind);
    if (this.#flushing) return;
    this.#flushing = true;
    queueMicrotask(() => {
      this.#flushing = false;
      const kinds = [...this.#dirty];
      this.#dirty.clear();
      if (this.#closed) return;
      if (!this.#stream) return this.#connect();
      for (const k of kinds) if (this.#type(k).names.size > 0) this.#send(k);
    });
  }

  isMissing(kind: Kind, name: string): boolean {
    return this.#type(kind).missing.has(name);
  }

  status(): AdsStatus {
    const types: AdsStatus['types'] = {};
    for (const [k, t] of this.#types)
      if (t.names.size > 0 || t.acks + t.nacks > 0)
        types[k] = {
          version: t.version,
          nonce: t.nonce,
          subscribed: t.names.size,
          acks: t.acks,
          nacks: t.nacks,
          missing: [...t.missing],
          lastNack: t.lastNack,
        };
    return { ...this.#status, types };
  }

  close(): void {
    this.#closed = true;
    this.#status.state = 'closed';
    clearTimeout(this.#retryTimer);
    for (const t of this.#types.values()) for (const name of [...t.timers.keys()]) this.#clearTimer(t, name);
    const s = this.#stream;
    this.#stream = undefined;
    s?.cancel();
    this.#client?.close();
    this.#client = undefined;
  }

  #type(kind: Kind): TypeState {
    return this.#types.get(kind) as TypeState;
  }

  #connect(): void {
    if (this.#closed || this.#stream || this.#retryTimer) return;
    const { grpc, bootstrap } = this.#o;
    this.#client ??= new grpc.Client(bootstrap.server.target, this.#credentials(), {
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_timeout_ms': 20_000,
      // The first connection attempt fails fast rather than waiting for the channel (A57).
      'grpc.initial_reconnect_backoff_ms': 1_000,
    });
    this.#status.state = 'connecting';
    this.#status.streams++;
    this.#answered = false;
    this.#nodeSent = false;
    // Nonces belong to a stream; versions carry over (the server may skip what the client has).
    for (const t of this.#types.values()) t.nonce = '';
    const stream = this.#client.makeBidiStreamRequest(
      ADS_PATH,
      (m) => Buffer.from(m),
      (b) => b,
      new grpc.Metadata(),
      {},
    );
    this.#stream = stream;
    stream.on('data', (buf) => {
      if (this.#stream !== stream) return;
      try {
        this.#onResponse(buf);
      } catch (err) {
        this.#o.logger.error({ err: (err as Error).message }, 'xds: cannot handle a control plane response');
      }
    });
    stream.on('error', (err) => this.#onEnd(stream, err.details || err.message));
    stream.on('status', () => this.#onEnd(stream, 'stream ended'));
    stream.on('end', () => this.#onEnd(stream, 'stream ended'));
    for (const k of KINDS) if (this.#type(k).names.size > 0) this.#send(k);
  }

  #credentials(): unknown {
    const { grpc, bootstrap } = this.#o;
    const c = bootstrap.server.creds;
    if (c.type === 'insecure') return grpc.credentials.createInsecure();
    const read = (f: string | undefined) => (f ? readFileSync(f) : null);
    return grpc.credentials.createSsl(read(c.caFile), read(c.keyFile), read(c.certFile));
  }

  #onEnd(stream: GrpcStream, reason: string): void {
    if (this.#stream !== stream) return;
    this.#stream = undefined;
    if (this.#closed) return;
    this.#status.lastError = reason;
    // Timers only run on a working stream (A57): they start again on the next one.
    for (const t of this.#types.values()) for (const name of [...t.timers.keys()]) this.#clearTimer(t, name);
    const base = this.#o.backoffBaseMs ?? XDS_DEFAULTS.backoffBaseMs;
    let delay: number;
    if (this.#answered) {
      this.#backoffMs = base;
      delay = 0;
    } else {
      const jitter = 1 + ((this.#o.random ?? Math.random)() * 0.4 - 0.2);
      delay = Math.round(this.#backoffMs * jitter);
      this.#backoffMs = Math.min(this.#backoffMs * 1.6, this.#o.backoffMaxMs ?? XDS_DEFAULTS.backoffMaxMs);
    }
    this.#status.state = 'backoff';
    this.#o.logger.warn(
      { server: this.#o.bootstrap.server.uri, reason, retryInMs: delay },
      'xds: ADS stream ended',
    );
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect();
    }, delay);
    this.#retryTimer.unref();
  }

  #send(kind: Kind, errorDetail?: string): void {
    const stream = this.#stream;
    if (!stream) return;
    const t = this.#type(kind);
    const req: Record<string, unknown> = {
      version_info: t.version,
      resource_names: [...t.names],
      type_url: typeUrlOf(kind),
      response_nonce: t.nonce,
    };
    if (!this.#nodeSent) {
      req.node = this.#node();
      this.#nodeSent = true;
    }
    if (errorDetail !== undefined)
      req.error_detail = { code: INVALID_ARGUMENT, message: errorDetail.slice(0, MAX_DETAIL) };
    stream.write(this.#o.codec.encode(REQUEST, req));
    // A57: the does-not-exist timer of each name asked for and not yet known starts now.
    for (const name of t.names)
      if (!t.known.has(name) && !t.missing.has(name) && !t.timers.has(name)) this.#armTimer(kind, t, name);
  }

  #node(): object {
    const n = this.#o.bootstrap.node;
    return {
      id: n.id,
      cluster: n.cluster,
      ...(n.locality ? { locality: n.locality } : {}),
      ...(n.metadata ? { metadata: toStruct(n.metadata) } : {}),
      user_agent_name: 'meshwork',
      user_agent_version: this.#o.version,
      client_features: ['xds.config.resource-in-sotw'],
    };
  }

  #armTimer(kind: Kind, t: TypeState, name: string): void {
    const timer = setTimeout(() => {
      t.timers.delete(name);
      if (t.known.has(name) || !t.names.has(name)) return;
      t.missing.add(name);
      this.#o.logger.warn({ type: kind, name }, 'xds: resource not received in time: it does not exist');
      this.#h.onChange(kind, new Map(), [name]);
    }, this.#o.resourceTimeoutMs);
    timer.unref();
    t.timers.set(name, timer);
  }

  #forget(t: TypeState, name: string): void {
    const bytes = t.known.get(name);
    if (bytes) t.byBytes.delete(Buffer.from(bytes).toString('latin1'));
    t.known.delete(name);
  }

  #clearTimer(t: TypeState, name: string): void {
    const timer = t.timers.get(name);
    if (timer) clearTimeout(timer);
    t.timers.delete(name);
  }

  #onResponse(buf: Uint8Array): void {
    const res = this.#o.codec.decode(RESPONSE, buf) as {
      version_info?: string;
      resources?: AnyMessage[];
      type_url?: string;
      nonce?: string;
    };
    this.#answered = true;
    this.#backoffMs = this.#o.backoffBaseMs ?? XDS_DEFAULTS.backoffBaseMs;
    if (this.#status.state !== 'connected') {
      this.#status.state = 'connected';
      this.#status.connectedAt = new Date().toISOString();
    }
    this.#status.responses++;
    const kind = kindOfTypeUrl(res.type_url ?? '');
    if (!kind) {
      this.#o.logger.warn(
        { type: res.type_url },
        'xds: response of a type meshwork did not ask for: ignored',
      );
      return;
    }
    const t = this.#type(kind);
    t.nonce = res.nonce ?? '';
    const errors: string[] = [];
    const updated = new Map<string, Model>();
    const seen = new Set<string>();
    for (let [i, any] of (res.resources ?? []).entries()) {
      if (typeUrlName(any.type_url) === RESOURCE_WRAPPER) {
        const wrapper = this.#o.codec.decode(RESOURCE_WRAPPER, any.value ?? new Uint8Array());
        any = (wrapper.resource ?? {}) as AnyMessage;
      }
      // State of the world resends every resource: one byte for byte as accepted is not decoded again.
      const raw = Buffer.from(any.value ?? new Uint8Array()).toString('latin1');
      const same = t.byBytes.get(raw);
      if (same !== undefined && t.known.has(same) && !seen.has(same)) {
        seen.add(same);
        continue;
      }
      const d = this.#h.decode(kind, any);
      if (d.name === '') {
        errors.push(`resource [${i}]: ${d.errors.join('; ')}`);
        continue;
      }
      if (seen.has(d.name)) {
        errors.push(`resource [${i}] "${d.name}": sent twice in one response`);
        continue;
      }
      seen.add(d.name);
      if (!t.names.has(d.name)) continue; // not asked for (a wildcard answer, or an old subscription)
      for (const w of d.warnings) this.#o.logger.warn({ type: kind, name: d.name }, `xds: ${w}`);
      if (d.errors.length > 0 || !d.model) {
        errors.push(...d.errors);
        continue;
      }
      const bytes = any.value ?? new Uint8Array();
      const before = t.known.get(d.name);
      this.#clearTimer(t, d.name);
      t.missing.delete(d.name);
      if (before && Buffer.compare(before, bytes) === 0) continue;
      if (before) t.byBytes.delete(Buffer.from(before).toString('latin1'));
      t.known.set(d.name, bytes);
      t.byBytes.set(raw, d.name);
      updated.set(d.name, d.model);
    }
    // State of the world: LDS and CDS answers list every resource that exists.
    const removed: string[] = [];
    if (kind === 'listener' || kind === 'cluster') {
      for (const name of t.names) {
        // Only a resource received before can be deleted this way: one never received may have
        // been asked for after the request this response answers (its timer decides).
        if (seen.has(name) || !t.known.has(name)) continue;
        if (this.#o.bootstrap.server.ignoreResourceDeletion) {
          this.#o.logger.warn(
            { type: kind, name },
            'xds: resource deleted by the control plane: kept (ignore_resource_deletion)',
          );
          continue;
        }
        this.#forget(t, name);
        t.missing.add(name);
        removed.push(name);
      }
    }
    if (errors.length === 0) {
      t.version = res.version_info ?? '';
      t.acks++;
      this.#send(kind);
    } else {
      t.nacks++;
      t.lastNack = { at: new Date().toISOString(), version: res.version_info ?? '', nonce: t.nonce, errors };
      this.#o.logger.warn({ type: kind, version: res.version_info, errors }, 'xds: resources refused (NACK)');
      this.#send(kind, errors.join('\n'));
      this.#h.onRefused?.(kind, errors);
    }
    if (updated.size > 0 || removed.length > 0) this.#h.onChange(kind, updated, removed);
  }
}
