/**
 * Config from the stores a fleet already runs: a Consul KV key (blocking queries) or an etcd key
 * (a watch). The value is a meshwork config, YAML or JSON, as MESHWORK_CONFIG. Every replica
 * reads the key itself; a change reaches each as soon as the store tells it (the blocked query
 * returns, the watch fires), with no process of ours in between.
 *
 * A key that is absent (never written, or deleted) is reported, and the last good config keeps
 * running: write `{}` to say "nothing from here". A store that cannot be reached is retried with
 * jittered backoff (up to 30 s), also keeping the last good config. Nothing waits on the store:
 * requests run on whatever config is live.
 */
import { EventEmitter } from 'node:events';
import type Consul from 'consul';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { parseConfigText } from '../config/load.ts';
import { consulSettings } from '../discovery/consul.ts';
import { ETCD_DEFAULTS } from '../discovery/etcd.ts';
import { ETCD_CREDENTIALS } from '../discovery/schema.ts';
import { backoffDelay } from '../discovery/tracker.ts';
import { WakeableSleep } from '../discovery/wakeable-sleep.ts';
import { MeshworkConfigError } from '../errors.ts';
import { loadOptional } from '../optional.ts';
import { hasUserinfo } from '../telemetry/url.ts';
import type { ConsulKeyConfig, EtcdKeyConfig } from './schema.ts';
import type { ConfigSource, SourceSink } from './source.ts';

export const REMOTE_DEFAULTS = {
  /** Blocking query wait (Consul caps it at 10 m); shorter than discovery's 60 s, so a silent dead connection is noticed sooner. */
  consulWait: 30_000,
  /** Least time between two Consul queries, even when the index churns (consul#1244). */
  consulMinInterval: 100,
  backoffBase: 500,
  backoffCap: 30_000,
} as const;

/** Parses a stored value; a bad one is refused (the last good config keeps running). */
function parseValue(sink: SourceSink, text: string, where: string, label: string): void {
  let doc: unknown;
  try {
    doc = parseConfigText(text, where, label);
  } catch (err) {
    sink.invalid(err as Error);
    return;
  }
  sink.doc(doc);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const status = (err as { response?: { statusCode?: number }; statusCode?: number }).response?.statusCode;
    return status ? `${status} ${err.message}` : err.message;
  }
  return String(err);
}

/** `liveConfig.consul`: GET /v1/kv/<key> with index/wait, in a loop. */
export class ConsulKeySource implements ConfigSource {
  readonly layer = 'consul' as const;
  readonly label: string;
  readonly key: string;
  readonly #consul: Consul;
  readonly #opts: { token?: string | undefined; dc?: string | undefined; stale: boolean; wait: number };
  readonly #random: () => number;
  #sink: SourceSink | undefined;
  #index = 0;
  #failures = 0;
  #closed = false;
  #ctx: EventEmitter | undefined;
  readonly #sleeper = new WakeableSleep();
  #loop: Promise<void> | undefined;
  #lastValue: string | null | undefined;
  /** Queries sent (for the bench). */
  requests = 0;

  constructor(cfg: ConsulKeyConfig, env: NodeJS.ProcessEnv, opts: { random?: () => number } = {}) {
    const s = consulSettings(cfg, '', env);
    this.key = cfg.key;
    this.label = `consul ${cfg.key}`;
    this.#opts = { token: s.token, dc: s.dc, stale: s.stale, wait: cfg.wait ?? REMOTE_DEFAULTS.consulWait };
    this.#random = opts.random ?? Math.random;
    const ConsulClient = loadOptional<typeof Consul>('consul', 'config from Consul (`liveConfig.consul`)');
    this.#consul = new ConsulClient({ host: s.host, port: s.port, secure: s.secure });
  }

  start(sink: SourceSink): void {
    this.#sink = sink;
    this.#loop = this.#run();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ctx?.emit('cancel');
    this.#sleeper.wake();
    await this.#loop;
    this.#consul.destroy();
  }

  async #run(): Promise<void> {
    const sink = this.#sink as SourceSink;
    while (!this.#closed) {
      const started = Date.now();
      const requested = this.#index;
      try {
        const [res, body] = await this.#query(requested);
        if (this.#closed) break;
        const header = Number(res?.headers?.['x-consul-index']);
        // Missing, invalid or backwards: the next read is a full, non-blocking one.
        this.#index = !Number.isSafeInteger(header) || header < 1 || header < requested ? 0 : header;
        this.#failures = 0;
        const entry = body as { Value?: string | null } | undefined;
        if (res?.statusCode === 404 || entry === undefined) {
          if (this.#lastValue !== null)
            sink.unavailable(
              new Error(`${this.label}: the key does not exist: the last good config keeps running`),
            );
          this.#lastValue = null;
        } else {
          const value = entry.Value ?? '';
          if (value !== this.#lastValue) {
            this.#lastValue = value;
            parseValue(sink, value, `consul key ${this.key}`, 'liveConfig.consul');
          } else sink.recovered();
        }
      } catch (err) {
        if (this.#closed) break;
        this.#index = 0;
        sink.unavailable(new Error(`${this.label}: ${describe(err)}: the last good config keeps running`));
        await this.#sleep(
          backoffDelay(
            this.#failures++,
            REMOTE_DEFAULTS.backoffBase,
            REMOTE_DEFAULTS.backoffCap,
            this.#random,
          ),
        );
        continue;
      }
      const elapsed = Date.now() - started;
      if (elapsed < REMOTE_DEFAULTS.consulMinInterval)
        await this.#sleep(REMOTE_DEFAULTS.consulMinInterval - elapsed);
    }
  }

  async #query(index: number): Promise<[{ statusCode?: number; headers?: Record<string, string> }, unknown]> {
    const ctx = new EventEmitter() as EventEmitter & { includeResponse?: boolean };
    ctx.includeResponse = true;
    this.#ctx = ctx;
    const o = this.#opts;
    const opts: Record<string, unknown> = { key: this.key, ctx };
    if (o.token) opts.token = o.token;
    if (o.dc) opts.dc = o.dc;
    if (o.stale) opts.stale = true;
    if (index > 0) {
      opts.index = String(index);
      opts.wait = `${Math.max(1, Math.round(o.wait / 1000))}s`;
      // Consul may add up to wait/16; a dead connection must not hang us forever.
      opts.timeout = o.wait + o.wait / 16 + 5_000;
    } else opts.timeout = 10_000;
    this.requests++;
    try {
      return (await this.#consul.kv.get(opts as never)) as unknown as [
        { statusCode?: number; headers?: Record<string, string> },
        unknown,
      ];
    } finally {
      if (this.#ctx === ctx) this.#ctx = undefined;
    }
  }

  #sleep(ms: number): Promise<void> {
    return this.#closed ? Promise.resolve() : this.#sleeper.sleep(ms);
  }
}

/** `liveConfig.etcd`: a read of the key, then a watch from the next revision (no change lost in between). */
export class EtcdKeySource implements ConfigSource {
  readonly layer = 'etcd' as const;
  readonly label: string;
  readonly key: string;
  readonly #client: Etcd3;
  readonly #random: () => number;
  #sink: SourceSink | undefined;
  #watcher: Watcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #failures = 0;
  #generation = 0;
  #lastValue: string | null | undefined;

  constructor(cfg: EtcdKeyConfig, env: NodeJS.ProcessEnv, opts: { random?: () => number } = {}) {
    const fromEnv = env.ETCDCTL_ENDPOINTS?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (cfg.hosts === undefined && fromEnv?.some(hasUserinfo))
      throw new MeshworkConfigError([{ path: 'ETCDCTL_ENDPOINTS (environment)', message: ETCD_CREDENTIALS }]);
    const hosts = (cfg.hosts ?? (fromEnv?.length ? fromEnv : [...ETCD_DEFAULTS.hosts])).map((h) =>
      /^https?:\/\//.test(h) ? h : `http://${h}`,
    );
    this.key = cfg.key;
    this.label = `etcd ${cfg.key}`;
    this.#random = opts.random ?? Math.random;
    const { Etcd3: Client } = loadOptional<typeof import('etcd3')>(
      'etcd3',
      'config from etcd (`liveConfig.etcd`)',
    );
    this.#client = new Client({
      hosts,
      ...(cfg.username ? { auth: { username: cfg.username, password: cfg.password ?? '' } } : {}),
      dialTimeout: 3_000,
    });
  }

  start(sink: SourceSink): void {
    this.#sink = sink;
    void this.#sync();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    const w = this.#watcher;
    this.#watcher = undefined;
    await w?.cancel().catch(() => {});
    this.#client.close();
  }

  #value(kv: { value: Buffer } | undefined): void {
    const sink = this.#sink as SourceSink;
    if (kv === undefined) {
      if (this.#lastValue !== null)
        sink.unavailable(
          new Error(`${this.label}: the key does not exist: the last good config keeps running`),
        );
      this.#lastValue = null;
      return;
    }
    const text = kv.value.toString('utf8');
    if (text === this.#lastValue) {
      sink.recovered();
      return;
    }
    this.#lastValue = text;
    parseValue(sink, text, `etcd key ${this.key}`, 'liveConfig.etcd');
  }

  async #sync(): Promise<void> {
    const gen = ++this.#generation;
    try {
      const res = await this.#client.get(this.key).exec();
      if (this.#closed || gen !== this.#generation) return;
      this.#value(res.kvs[0]);
      const watcher = await this.#client
        .watch()
        .key(this.key)
        .startRevision(String(BigInt(res.header.revision) + 1n))
        .create();
      if (this.#closed || gen !== this.#generation) {
        await watcher.cancel().catch(() => {});
        return;
      }
      this.#watcher = watcher;
      this.#failures = 0;
      watcher.on('put', (kv: IKeyValue) => this.#value(kv));
      watcher.on('delete', () => this.#value(undefined));
      // etcd3 reconnects a disconnected watch by itself and resumes from the last revision seen.
      watcher.on('disconnected', (err) => {
        if (gen === this.#generation && !this.#closed)
          this.#sink?.unavailable(
            new Error(
              `${this.label}: watch disconnected (${err?.message ?? ''}): the last good config keeps running`,
            ),
          );
      });
      watcher.on('connected', () => {
        if (gen === this.#generation) this.#sink?.recovered();
      });
      watcher.on('error', (err) => this.#fail(err, gen));
    } catch (err) {
      this.#fail(err, gen);
    }
  }

  #fail(err: unknown, gen: number): void {
    if (this.#closed || gen !== this.#generation) return;
    this.#generation++;
    this.#sink?.unavailable(new Error(`${this.label}: ${describe(err)}: the last good config keeps running`));
    const w = this.#watcher;
    this.#watcher = undefined;
    w?.removeAllListeners();
    w?.cancel().catch(() => {});
    const delay = backoffDelay(
      this.#failures++,
      REMOTE_DEFAULTS.backoffBase,
      REMOTE_DEFAULTS.backoffCap,
      this.#random,
    );
    this.#timer = setTimeout(() => void this.#sync(), delay);
    this.#timer.unref();
  }
}
