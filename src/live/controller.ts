/**
 * THE apply path of live configuration. Every change, whatever brings it (mesh.update, the
 * watched file, the Istio directory, Consul, etcd; an xDS client would be one more caller), goes
 * through `apply(layer, doc, source)`:
 *
 *   1. merge the layer's new document with the other layers' last accepted ones (src/live/layers.ts);
 *   2. validate the whole result (the same validation as createMesh), plus what cannot change on
 *      a running mesh (identity, liveConfig);
 *   3. build the next generation beside the running one (src/live/generation.ts), reading every
 *      file and loading every package it needs; any failure disposes of it;
 *   4. commit: swap the generation in one assignment (the dispatcher reads it once per request),
 *      then start new discovery, hand over changed sources, drain what is gone.
 *
 * A failure in 1-3 leaves the running config untouched: it is logged, published on
 * `meshwork:config:update` with `result: 'refused'`, shown in the snapshot, and thrown to the
 * caller (mesh.update rejects with it). Apply is synchronous: two changes never interleave.
 */
import dc from 'node:diagnostics_channel';
import type { ServiceBreaker } from '../breaker/breaker.ts';
import type { MeshConfig } from '../config/schema.ts';
import type { ContextRuntime } from '../context/runtime.ts';
import {
  type ConfigIssue,
  isMeshworkError,
  MeshClosedError,
  MeshworkConfigError,
  type MeshworkError,
} from '../errors.ts';
import { type ServiceCore, ServiceRuntime } from '../service.ts';
import { CHANNELS } from '../telemetry/channels.ts';
import { type BuildContext, type Generation, type Plan, plan, withService } from './generation.ts';
import { configKey, configKeys } from './key.ts';
import { type LayerName, mergeLayers } from './layers.ts';
import type { ConfigSource, SourceSink, SourceStatus } from './source.ts';
import { IncrementalValidator } from './validate.ts';

/** `meshwork:config:update`: one message per update, applied or not. */
export interface ConfigUpdateMessage {
  /**
   * `applied`: the new config runs; `unchanged`: it was the running one already; `refused`: it is
   * invalid (the running config stays); `unavailable`: a watched source cannot be read (same).
   */
  result: 'applied' | 'unchanged' | 'refused' | 'unavailable';
  /** What brought it: "createMesh", "mesh.update", "file /etc/meshwork/mesh.yaml", "etcd /meshwork/config"... */
  source: string;
  /** The running config's version and hash after this update. */
  version: number;
  hash: string;
  /** On `applied`: the hash before. */
  previousHash?: string | undefined;
  /** On `applied`: services added, removed, and changed. */
  services?: { added: string[]; removed: string[]; changed: string[] } | undefined;
  /** On `refused` / `unavailable`. */
  error?: Error | undefined;
  /** Time to validate, build and swap (ms). */
  durationMs: number;
}

/** `mesh.snapshot().config`. */
export interface ConfigSnapshot {
  /** 1 at createMesh, one more per applied update. */
  version: number;
  /** Hash of the running (validated) config: equal configs, equal hashes, on every replica. */
  hash: string;
  /** What brought the running config: "createMesh", "mesh.update", "file <path>", "istio <dir>", "consul <key>", "etcd <key>". */
  source: string;
  /** When it was applied (ISO 8601). */
  appliedAt: string;
  updates: { applied: number; unchanged: number; refused: number };
  /** The last update refused (invalid), with its error; stays after later good updates. */
  lastRefused?:
    | { at: string; source: string; code: string; error: string; issues?: ConfigIssue[] | undefined }
    | undefined;
  /** Watched sources. */
  sources: SourceStatus[];
  /** Services whose new discovery source is starting while the old endpoints keep serving. */
  handovers: { service: string; since: string; provider: string; endpoints: number }[];
  /** Services gone from the config, finishing their in-flight requests. */
  draining: { service: string; since: string; requests: number }[];
}

export const configUpdateChannel = dc.channel(CHANNELS.configUpdate);

/** Least time a retired core keeps its endpoints after losing its last request (requests buffering a body reach it later). */
const RETIRE_GRACE_MS = 500;
/** How often a retiring core, and a pending handover, are looked at. */
const CHECK_MS = 50;

interface Retiring {
  core: ServiceCore;
  since: string;
  done: Promise<void>;
  finish: (timeoutMs: number) => void;
}

interface Handover {
  core: ServiceCore;
  since: string;
  timer: NodeJS.Timeout;
}

export class ConfigController {
  readonly #ctx: BuildContext;
  readonly #context: ContextRuntime;
  #generation: Generation;
  /** configKey of the running config (compared with each candidate). */
  #key: string;
  #docs: Map<LayerName, unknown>;
  #appliedAt = new Date().toISOString();
  #source = 'createMesh';
  #counts = { applied: 0, unchanged: 0, refused: 0 };
  #lastRefused: ConfigSnapshot['lastRefused'];
  readonly #sources: { source: ConfigSource; status: SourceStatus }[] = [];
  readonly #handovers = new Map<string, Handover>();
  readonly #retiring = new Set<Retiring>();
  readonly #retiredBreakers = new Set<{ breaker: ServiceBreaker; timer: NodeJS.Timeout }>();
  #closed = false;
  /** Validates each update at the cost of the services it changes (src/live/validate.ts). */
  readonly #validator: IncrementalValidator;

  /** Builds the first generation from the layers createMesh read; throws as createMesh throws. */
  constructor(
    ctx: BuildContext,
    docs: Map<LayerName, unknown>,
    config: MeshConfig,
    validator: IncrementalValidator = new IncrementalValidator(),
  ) {
    this.#ctx = ctx;
    this.#validator = validator;
    this.#docs = docs;
    const keys = configKeys(config);
    this.#key = keys.key;
    const first = plan(undefined, config, ctx, new Map(), keys);
    this.#context = first.context as ContextRuntime;
    this.#generation = first.generation;
    for (const v of first.generation.services.values()) v.start();
  }

  /** The running generation: read once per request. */
  get generation(): Generation {
    return this.#generation;
  }

  /** The mesh's context runtime (its settings follow the config). */
  get context(): ContextRuntime {
    return this.#context;
  }

  /** Watches `source` from now on; its documents go through apply() as layer `source.layer`. */
  watch(source: ConfigSource): void {
    const status: SourceStatus = {
      source: source.label,
      state: source.loaded ? 'watching' : 'starting',
      documents: 0,
    };
    this.#sources.push({ source, status });
    let reported: string | undefined;
    const sink: SourceSink = {
      doc: (doc) => {
        if (this.#closed) return;
        status.state = 'watching';
        status.lastError = undefined;
        reported = undefined;
        status.documents++;
        status.lastDocumentAt = new Date().toISOString();
        try {
          this.apply(source.layer, doc, source.label);
        } catch {
          // Refused: logged, published and shown by apply; the last good config keeps running.
        }
        const w = (source as { warnings?: string[] }).warnings;
        status.warnings = w?.length ? [...w] : undefined;
      },
      invalid: (err) => {
        if (this.#closed) return;
        status.state = 'watching';
        status.documents++;
        status.lastDocumentAt = new Date().toISOString();
        this.refuse(source.label, err);
      },
      unavailable: (err) => {
        if (this.#closed) return;
        status.state = 'unavailable';
        status.lastError = err.message;
        // Reported once until it changes (a poll or a retry loop would repeat it).
        if (reported === err.message) return;
        reported = err.message;
        this.#ctx.logger.warn({ source: source.label, err: err.message }, 'live config source unavailable');
        this.#publish({ result: 'unavailable', source: source.label, error: err, durationMs: 0 });
      },
      recovered: () => {
        if (this.#closed || status.state === 'watching') return;
        status.state = 'watching';
        status.lastError = undefined;
        reported = undefined;
      },
    };
    source.start(sink);
  }

  /**
   * Replaces one layer's document and applies the result (steps 1-4 above). Throws the
   * MeshworkConfigError (or build error) when refused; the running config is then untouched.
   */
  apply(layer: LayerName, doc: unknown, source: string): void {
    const t0 = performance.now();
    if (this.#closed) throw new MeshClosedError();
    let p: Plan;
    let docs: Map<LayerName, unknown>;
    let warnings: string[];
    try {
      if (layer !== 'file' && layer !== 'code' && hasOwn(doc, 'liveConfig'))
        throw new MeshworkConfigError([
          { path: 'liveConfig', message: `is set in code or MESHWORK_CONFIG only, not by ${source}` },
        ]);
      docs = new Map(this.#docs);
      docs.set(layer, doc);
      const merged = mergeLayers(docs);
      warnings = merged.warnings;
      const config = this.#validator.validate(merged.doc);
      this.#checkFixed(config);
      const current = this.#generation;
      const keys = configKeys(config);
      if (keys.key === this.#key) {
        this.#docs = docs;
        this.#counts.unchanged++;
        this.#warn(source, warnings);
        this.#ctx.logger.debug({ source, version: current.version }, 'config unchanged');
        this.#publish({ result: 'unchanged', source, durationMs: performance.now() - t0 });
        return;
      }
      p = plan(current, config, this.#ctx, new Map([...this.#handovers].map(([n, h]) => [n, h.core])), keys);
      this.#key = keys.key;
    } catch (err) {
      this.refuse(source, err as Error, t0);
      throw err;
    }
    const previousHash = this.#generation.hash;
    this.#commit(p);
    this.#docs = docs;
    this.#source = source;
    this.#appliedAt = new Date().toISOString();
    this.#counts.applied++;
    this.#warn(source, warnings);
    const durationMs = performance.now() - t0;
    this.#ctx.logger.info(
      { source, version: p.generation.version, hash: p.generation.hash, ...p.changed, durationMs },
      'config applied',
    );
    this.#publish({ result: 'applied', source, previousHash, services: p.changed, durationMs });
  }

  /** identity and liveConfig are read at createMesh only: a change would not take effect, so it is refused. */
  #checkFixed(config: MeshConfig): void {
    const now = this.#generation.config;
    const issues: ConfigIssue[] = [];
    if (configKey(config.identity) !== configKey(now.identity))
      issues.push({
        path: 'identity',
        message:
          'cannot change on a running mesh (its certificates rotate by themselves; restart to use another identity)',
      });
    if (configKey(config.liveConfig) !== configKey(now.liveConfig))
      issues.push({
        path: 'liveConfig',
        message:
          'cannot change on a running mesh (the sources are watched from createMesh; restart to watch others)',
      });
    if (issues.length > 0) throw new MeshworkConfigError(issues);
  }

  #warn(source: string, warnings: readonly string[]): void {
    for (const w of warnings) this.#ctx.logger.warn({ source }, w);
  }

  /** Records a refused update (invalid, or not allowed on a running mesh): logged, published, in the snapshot. */
  refuse(source: string, err: Error, t0: number = performance.now()): void {
    this.#counts.refused++;
    const e = err as MeshworkError & { issues?: ConfigIssue[] };
    this.#lastRefused = {
      at: new Date().toISOString(),
      source,
      code: isMeshworkError(err) ? e.code : err.name,
      error: err.message,
      issues: e.issues ? e.issues.map((i) => ({ ...i })) : undefined,
    };
    this.#ctx.logger.error({ source, err: err.message }, 'config update refused: the running config stays');
    this.#publish({ result: 'refused', source, error: err, durationMs: performance.now() - t0 });
  }

  #publish(msg: Omit<ConfigUpdateMessage, 'version' | 'hash'>): void {
    if (!configUpdateChannel.hasSubscribers) return;
    const g = this.#generation;
    configUpdateChannel.publish({ ...msg, version: g.version, hash: g.hash } satisfies ConfigUpdateMessage);
  }

  /** Step 4: everything after validation; nothing here throws for the config's sake. */
  #commit(p: Plan): void {
    const old = this.#generation;
    if (p.context) this.#context.adopt(p.context);
    for (const v of p.generation.services.values()) v.core.activate(v);
    this.#generation = p.generation;
    for (const core of p.created) core.start();
    // Handovers this plan no longer wants (the source changed again, or back, or the service went).
    const oldCores = coresOf(old, this.#handovers);
    for (const [name, h] of this.#handovers)
      if (p.handovers.get(name) !== h.core) {
        clearInterval(h.timer);
        this.#handovers.delete(name);
      }
    for (const [name, core] of p.handovers) if (!this.#handovers.has(name)) this.#handover(name, core);
    const newCores = coresOf(p.generation, this.#handovers);
    for (const core of oldCores) if (!newCores.has(core)) this.#retire(core);
    // Breakers replaced by new settings: the requests that hold one settle on it; then it stops.
    const kept = new Set(Array.from(p.generation.services.values(), (v) => v.breaker));
    for (const v of old.services.values()) {
      const b = v.breaker;
      if (b === undefined || kept.has(b)) continue;
      kept.add(b);
      this.#retireBreaker(b);
      const next = p.generation.services.get(v.name);
      // The service-wide state the snapshot shows is the new breaker's (it starts closed).
      if (next?.core === v.core && v.core.telemetry.breakers.has(''))
        v.core.telemetry.circuitBreaker({ state: next.breaker?.state ?? 'closed' });
    }
  }

  /** A breaker no version uses: stopped once the requests that acquired it before have settled. */
  #retireBreaker(breaker: ServiceBreaker): void {
    const entry = { breaker, timer: setTimeout(() => this.#stopBreaker(entry), RETIRE_GRACE_MS * 2) };
    entry.timer.unref();
    this.#retiredBreakers.add(entry);
  }

  #stopBreaker(entry: { breaker: ServiceBreaker; timer: NodeJS.Timeout }): void {
    clearTimeout(entry.timer);
    this.#retiredBreakers.delete(entry);
    entry.breaker.shutdown();
  }

  /** The new core serves once it has endpoints; until then the old one does (nothing is dropped first). */
  #handover(name: string, core: ServiceCore): void {
    const since = Date.now();
    let warned = false;
    const timer = setInterval(() => {
      if (this.#handovers.get(name)?.core !== core) return clearInterval(timer);
      const current = this.#generation.services.get(name);
      if (!current) return;
      if (!(core.endpoints.isReady && core.endpoints.size > 0)) {
        if (!warned && Date.now() - since > current.initialTimeoutMs) {
          warned = true;
          this.#ctx.logger.warn(
            { service: name, provider: core.discovery.kind },
            'new discovery source has no endpoints yet: the previous endpoints keep serving',
          );
        }
        return;
      }
      clearInterval(timer);
      this.#handovers.delete(name);
      let next: ServiceRuntime;
      try {
        next = new ServiceRuntime(name, current.config, this.#optsOf(current), { previous: current, core });
      } catch (err) {
        // Built once already with this config; should it fail now, the old endpoints keep serving.
        this.#ctx.logger.error({ service: name, err: (err as Error).message }, 'discovery handover failed');
        this.#retire(core);
        return;
      }
      next.sourceKey = current.sourceKey;
      core.activate(next);
      const before = current.core;
      this.#generation = withService(this.#generation, next);
      if (!coresOf(this.#generation, this.#handovers).has(before)) this.#retire(before);
      if (current.breaker && current.breaker !== next.breaker) this.#retireBreaker(current.breaker);
      this.#ctx.logger.info(
        { service: name, provider: core.discovery.kind, endpoints: core.endpoints.size },
        'discovery handed over to the new source',
      );
    }, CHECK_MS);
    timer.unref();
    this.#handovers.set(name, { core, since: new Date(since).toISOString(), timer });
  }

  #optsOf(v: ServiceRuntime) {
    const ctx = this.#ctx;
    const config = this.#generation.config;
    return {
      clock: ctx.clock,
      logger: ctx.logger,
      zone: config.zone ?? (ctx.env.MESHWORK_ZONE || undefined),
      env: ctx.env,
      identity: ctx.identity,
      paths: this.#context.paths,
      labels: config.labels,
      rateLimits: ctx.rateLimits,
      xds: ctx.xds,
      fallback: v.fallback,
    };
  }

  /**
   * A core no generation uses any more (its service was removed, or its source replaced): it
   * stops watching its registry and drains like a removed endpoint: it keeps its endpoints while
   * requests that started before still use it, then closes; destroyed after the drain timeout.
   */
  #retire(core: ServiceCore): void {
    const started = Date.now();
    const drainMs = core.layout.drainTimeoutMs;
    void core.stopDiscovery();
    let finish!: (timeoutMs: number) => void;
    const entry: Retiring = {
      core,
      since: new Date(started).toISOString(),
      finish: (t) => finish(t),
      done: Promise.resolve(),
    };
    entry.done = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let finished = false;
      finish = (timeoutMs) => {
        if (finished) return;
        finished = true;
        if (timer) clearInterval(timer);
        this.#retiring.delete(entry);
        void core.close(timeoutMs).then(resolve, resolve);
      };
      const check = () => {
        const idle = core.requests.active === 0 && core.limits.active === 0;
        const elapsed = Date.now() - started;
        if ((idle && elapsed >= RETIRE_GRACE_MS) || elapsed >= drainMs) finish(0);
      };
      timer = setInterval(check, CHECK_MS);
      timer.unref();
    });
    this.#retiring.add(entry);
  }

  snapshot(): ConfigSnapshot {
    const g = this.#generation;
    return {
      version: g.version,
      hash: g.hash,
      source: this.#source,
      appliedAt: this.#appliedAt,
      updates: { ...this.#counts },
      ...(this.#lastRefused ? { lastRefused: { ...this.#lastRefused } } : {}),
      sources: this.#sources.map((s) => ({
        ...s.status,
        ...(s.status.warnings ? { warnings: [...s.status.warnings] } : {}),
      })),
      handovers: Array.from(this.#handovers, ([service, h]) => ({
        service,
        since: h.since,
        provider: h.core.discovery.kind,
        endpoints: h.core.endpoints.size,
      })),
      draining: Array.from(this.#retiring, (r) => ({
        service: r.core.name,
        since: r.since,
        requests: r.core.requests.active,
      })),
    };
  }

  /**
   * Stops the sources and pending handovers, and closes draining cores (within `timeoutMs`).
   * The running generation's services are the mesh's to close.
   */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#sources.map((s) => s.source.close().catch(() => {})));
    for (const s of this.#sources) s.status.state = 'closed';
    const pending = [...this.#handovers.values()];
    this.#handovers.clear();
    for (const h of pending) clearInterval(h.timer);
    const retiring = [...this.#retiring];
    for (const r of retiring) r.finish(timeoutMs);
    for (const b of [...this.#retiredBreakers]) this.#stopBreaker(b);
    await Promise.all([...pending.map((h) => h.core.close(0)), ...retiring.map((r) => r.done)]);
  }
}

function coresOf(g: Generation, handovers: ReadonlyMap<string, { core: ServiceCore }>): Set<ServiceCore> {
  const cores = new Set<ServiceCore>();
  for (const v of g.services.values()) cores.add(v.core);
  for (const h of handovers.values()) cores.add(h.core);
  return cores;
}

function hasOwn(doc: unknown, key: string): boolean {
  return typeof doc === 'object' && doc !== null && Object.hasOwn(doc, key);
}
