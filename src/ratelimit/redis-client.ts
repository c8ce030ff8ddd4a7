/**
 * The narrow Redis connection the store uses: one node-redis client (or cluster) per mesh, loaded
 * lazily (`redis` is an optional peer dependency, loaded only when `rateLimits.store.redis` is
 * configured). Commands are never queued while disconnected (`disableOfflineQueue`: they fail at
 * once), each call is bounded by our own timer, and the client reconnects by itself with a short capped backoff.
 * Scripts go as EVALSHA; a server that does not know the script yet gets EVAL once.
 */

import { loadOptional } from '../optional.ts';
import type { Logger } from '../telemetry/logger.ts';
import { redactUrl } from '../telemetry/url.ts';
import type { Script } from './lua.ts';

export interface RedisConnection {
  /** True while commands can be sent. */
  readonly ready: boolean;
  /**
   * Runs a script (EVALSHA, EVAL on NOSCRIPT). Rejects on error, and with a TimeoutError after
   * `timeoutMs` when given; without it the call runs until Redis answers or the connection dies
   * (the store races it against its own deadlines, and keeps a late answer).
   */
  evalScript(
    script: Script,
    keys: readonly string[],
    args: readonly string[],
    timeoutMs?: number,
  ): Promise<unknown>;
  /** Loads scripts (SCRIPT LOAD) so the first EVALSHA of each finds them (a single node only). */
  load(scripts: readonly Script[]): Promise<void>;
  /** Called on every change of `ready`. */
  onReadyChange: ((ready: boolean) => void) | undefined;
  close(): Promise<void>;
}

/** What we use of node-redis's client and cluster objects (kept narrow on purpose). */
interface NodeRedisLike {
  isReady: boolean;
  on(event: string, fn: (...args: unknown[]) => void): unknown;
  connect(): Promise<unknown>;
  destroy(): void;
  close(): Promise<void>;
  unref?(): void;
}
interface NodeRedisClient extends NodeRedisLike {
  sendCommand(args: readonly string[]): Promise<unknown>;
}
interface NodeRedisCluster extends NodeRedisLike {
  sendCommand(firstKey: string, isReadonly: boolean, args: readonly string[]): Promise<unknown>;
}
interface NodeRedisModule {
  createClient(opts: Record<string, unknown>): NodeRedisClient;
  createCluster(opts: Record<string, unknown>): NodeRedisCluster;
}

export class StoreTimeoutError extends Error {
  constructor(ms: number) {
    super(`the Redis call took longer than ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * `p`, or a TimeoutError after `ms`. Our own timer, not node-redis's `timeout` option: that one
 * did not fire for a command already written to a Redis that stopped answering (SIGSTOP), which
 * is exactly the case it must cover. The late answer is dropped; the breaker stops new calls.
 */
function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreTimeoutError(ms)), ms);
    timer.unref();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** Reconnect backoff: 50 ms doubling to 500 ms, plus jitter, forever. */
export function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 10), 500) + Math.floor(Math.random() * 50);
}

export interface ConnectOptions {
  url: string;
  cluster: boolean;
  logger: Logger;
  /** Test hook: a prebuilt module in place of `require('redis')`. */
  module?: NodeRedisModule;
}

export function connectRedis(opts: ConnectOptions): RedisConnection {
  const mod = opts.module ?? loadOptional<NodeRedisModule>('redis', 'rateLimits.store.redis');
  const socket = { connectTimeout: 2_000, reconnectStrategy: reconnectDelay, noDelay: true };
  const common = { disableOfflineQueue: true, commandsQueueMaxLength: 10_000 };
  const shown = redactUrl(opts.url);
  let ready = false;
  let closing = false;
  let loggedDown = false;
  const conn: RedisConnection = {
    get ready() {
      return ready && !closing;
    },
    onReadyChange: undefined,
    evalScript(script, keys, args, timeoutMs) {
      const cmd = ['EVALSHA', script.sha, String(keys.length), ...keys, ...args];
      const first = keys[0] as string;
      const call = send(first, cmd).catch((err: unknown) => {
        if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
        cmd[0] = 'EVAL';
        cmd[1] = script.source;
        return send(first, cmd);
      });
      return timeoutMs === undefined ? call : bounded(call, timeoutMs);
    },
    async load(scripts) {
      if (opts.cluster) return; // each node learns a script on its first EVAL (NOSCRIPT fallback)
      for (const sc of scripts) await bounded(send('', ['SCRIPT', 'LOAD', sc.source]), 2_000);
    },
    async close() {
      closing = true;
      try {
        await Promise.race([client.close(), new Promise((r) => setTimeout(r, 1_000).unref())]);
      } catch {
        // closing anyway
      }
      client.destroy();
    },
  };
  const setReady = (r: boolean) => {
    if (r === ready) return;
    ready = r;
    if (r) {
      loggedDown = false;
      opts.logger.info({ redis: shown }, 'rate limits: Redis connected');
    }
    conn.onReadyChange?.(r);
  };
  let client: NodeRedisClient | NodeRedisCluster;
  let send: (firstKey: string, cmd: readonly string[]) => Promise<unknown>;
  if (opts.cluster) {
    const cluster = mod.createCluster({
      rootNodes: [{ url: opts.url }],
      defaults: { ...common, socket },
      minimizeConnections: true,
    });
    send = (firstKey, cmd) => cluster.sendCommand(firstKey, false, cmd);
    client = cluster;
  } else {
    const single = mod.createClient({ url: opts.url, ...common, socket });
    send = (_firstKey, cmd) => single.sendCommand(cmd);
    client = single;
  }
  client.on('ready', () => setReady(true));
  client.on('connect', () => setReady(client.isReady));
  for (const ev of ['end', 'reconnecting'] as const) client.on(ev, () => setReady(false));
  client.on('error', (err: unknown) => {
    setReady(client.isReady);
    if (closing) return;
    if (!loggedDown) {
      loggedDown = true;
      opts.logger.warn(
        { redis: shown, err: String((err as Error)?.message ?? err) },
        'rate limits: Redis unreachable; deciding without it (rateLimits.store.onFailure) until it is back',
      );
    } else
      opts.logger.debug(
        { redis: shown, err: String((err as Error)?.message ?? err) },
        'rate limits: Redis error',
      );
  });
  client.connect().then(
    () => setReady(client.isReady),
    (err: unknown) => {
      if (!closing)
        opts.logger.warn(
          { redis: shown, err: String((err as Error)?.message ?? err) },
          'rate limits: Redis connect failed',
        );
    },
  );
  return conn;
}
