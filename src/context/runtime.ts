import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Clock } from '../clock.ts';
import { MeshworkConfigError } from '../errors.ts';
import {
  normalizeTarget,
  type PathNormalizationConfig,
  type PathOptions,
  type PathRejection,
  pathOf,
  pathOptions,
} from '../http/path.ts';
import type { Logger } from '../telemetry/logger.ts';
import { peerPrincipal } from '../tls/san.ts';
import type { PeerVerdict } from '../tls/trust.ts';
import { type AuthzDecision, authorize } from './authorization.ts';
import { type JwsAlgorithm, type JwsKeys, type JwsResult, JwsVerifier, loadPublicKey } from './jws.ts';
import { editRequestHeaders } from './request-headers.ts';
import type { AuthorizationConfig, ContextConfig, PathCase } from './schema.ts';
import {
  BAGGAGE_HEADER,
  type ContextInit,
  DEADLINE_HEADER,
  DEFAULT_TOKEN_HEADER,
  type MeshContext,
  validTraceparent,
} from './store.ts';

/** Allowed clock skew on the signed token's exp/nbf. */
export const DEFAULT_CLOCK_SKEW_MS = 30_000;

export interface ContextCounters {
  /** Inbound requests handled by mesh.inbound(). */
  inbound: number;
  /** Requests whose context headers were accepted (trusted or no trust configured). */
  accepted: number;
  /** Requests that carried context headers from an untrusted caller: stripped, not forwarded. */
  untrusted: number;
  /** Context header values stripped (sum over requests). */
  strippedHeaders: number;
  /** Signed context tokens refused (bad signature, expired, wrong algorithm...). */
  invalidTokens: number;
  /** Requests refused with 403 by `authorization`. */
  denied: number;
  /** Requests refused with 400: a request target that cannot be normalized (docs/context.md). */
  badRequests: number;
}

/**
 * Why mesh.inbound() refuses a request: 403 by authorization, 400 for a malformed target; the
 * gate (rate limits) adds its own statuses, with the body and headers it wants sent.
 */
export interface Refusal {
  status: number;
  reason: string;
  /** The whole body (the gate's); default: from `status` and `reason` (see refusalBody). */
  body?: string | undefined;
  headers?: Record<string, string> | undefined;
}

export interface InboundResult {
  /** Set when the request is refused. */
  denied?: Refusal;
  ctx: MeshContext;
  /** Response headers the gate adds to an admitted request (RateLimit-Policy, RateLimit...). */
  headers?: Record<string, string> | undefined;
}

/**
 * A check after the context is read (rate limits, src/ratelimit/inbound.ts): it may refuse the
 * request or add response headers. Synchronous, or a promise when it must wait (bounded).
 */
export type InboundGate = (req: IncomingMessage, r: InboundResult) => InboundResult | Promise<InboundResult>;

/**
 * How the server routes: `rewrite` (node:http, Express, Connect) routes after mesh.inbound(), so
 * `req.url` is rewritten to the normalized target; `routed` (Fastify) has already chosen a route
 * from `req.url`, so a target that normalization would change is refused with 400 instead.
 */
export type InboundMode = 'rewrite' | 'routed';

type ExpressLike = IncomingMessage & { originalUrl?: string; baseUrl?: string };

interface Stored {
  ctx: MeshContext;
}

/**
 * The mesh's trust domains as the inbound side needs them (src/tls/trust.ts): the verdict on a
 * peer certificate (its own domain's bundle must vouch for it) and IDs with alias domains
 * replaced by the own domain.
 */
export interface InboundTrust {
  verifyPeer(socket: unknown): PeerVerdict;
  canonicalId(id: string): string;
  /** canonicalId for authorization principals (Istio: `cluster.local` there is the own domain). */
  policyId(id: string): string;
}

/**
 * The per-mesh context machinery: reads an inbound request (trust, token, trace, deadline,
 * authorization) into a MeshContext and keeps it in AsyncLocalStorage for the request's life.
 */
export class ContextRuntime {
  headers: readonly string[];
  baggage: boolean;
  readonly counters: ContextCounters = {
    inbound: 0,
    accepted: 0,
    untrusted: 0,
    strippedHeaders: 0,
    invalidTokens: 0,
    denied: 0,
    badRequests: 0,
  };
  readonly #als = new AsyncLocalStorage<Stored>();
  readonly #clock: Clock;
  readonly #logger: Logger;
  #callers: ReadonlySet<string> | undefined;
  /** `#callers` with alias domains replaced by the own domain. */
  #canonicalCallers: ReadonlySet<string> | undefined;
  #trust: InboundTrust | undefined;
  #tokenHeader: string | undefined;
  #verifier: JwsVerifier | undefined;
  #authz: AuthorizationConfig['policies'];
  #pathCase: PathCase;
  /** Path normalization (the mesh's `pathNormalization`). */
  paths: PathOptions;
  /** Injectable wall clock for token exp/nbf (ms since epoch). */
  wallClock: () => number = Date.now;
  /** The check after authorization and the context (rate limits); set by the mesh. */
  gate: InboundGate | undefined;
  /**
   * The gateway context's header names (the configured headers, the signed token's, `baggage`):
   * what `services.<name>.context.propagate` carries or strips. Trace headers and the deadline are not in it.
   */
  gatewayHeaders: readonly string[] = [];

  constructor(
    config: ContextConfig | undefined,
    authorization: AuthorizationConfig | undefined,
    opts: { clock: Clock; logger: Logger; pathNormalization?: PathNormalizationConfig | undefined },
  ) {
    this.headers = config?.headers ?? [];
    this.paths = pathOptions(opts.pathNormalization);
    this.#pathCase = authorization?.pathCase ?? 'FAIL_CLOSED';
    this.baggage = config?.baggage ?? true;
    this.#clock = opts.clock;
    this.#logger = opts.logger;
    this.#authz = authorization?.policies ?? [];
    const trust = config?.trust;
    this.#callers = trust?.callers ? new Set(trust.callers) : undefined;
    this.#canonicalCallers = this.#callers;
    const sig = trust?.signature;
    if (sig) {
      this.#tokenHeader = sig.header ?? DEFAULT_TOKEN_HEADER;
      let publicKey: JwsKeys['publicKey'];
      if (sig.publicKey) {
        const path = 'context.trust.signature.publicKey';
        try {
          const pem = sig.publicKey.includes('-----BEGIN')
            ? sig.publicKey
            : readFileSync(sig.publicKey, 'utf8');
          publicKey = loadPublicKey(pem);
        } catch (err) {
          throw new MeshworkConfigError([
            { path, message: `is not a readable PEM public key (${(err as Error).message})` },
          ]);
        }
      }
      const algorithms: JwsAlgorithm[] = sig.algorithms ?? [
        ...(sig.hmacSecret ? ['HS256' as const] : []),
        ...(publicKey ? ['ES256' as const] : []),
      ];
      this.#verifier = new JwsVerifier({
        hmacSecret: sig.hmacSecret,
        publicKey,
        algorithms,
        skewMs: sig.clockSkew ?? DEFAULT_CLOCK_SKEW_MS,
        audience: sig.audience,
        issuer: sig.issuer,
      });
    }
    this.gatewayHeaders = this.#gatewayHeaderNames();
  }

  #gatewayHeaderNames(): string[] {
    const names = new Set(this.headers);
    if (this.#tokenHeader !== undefined) names.add(this.#tokenHeader);
    names.add(BAGGAGE_HEADER);
    return [...names];
  }

  /**
   * A live config update: takes the settings of `next` (built from the new config, so its keys
   * and files were read and checked), keeping this runtime's context storage and counters. A
   * request already inside keeps the decision it got; the next one is judged by the new rules.
   */
  adopt(next: ContextRuntime): void {
    this.headers = next.headers;
    this.baggage = next.baggage;
    this.paths = next.paths;
    this.#callers = next.#callers;
    this.#canonicalCallers = this.#canonical(this.#callers);
    this.#tokenHeader = next.#tokenHeader;
    this.#verifier = next.#verifier;
    this.#authz = next.#authz;
    this.#pathCase = next.#pathCase;
    this.gatewayHeaders = next.gatewayHeaders;
  }

  /**
   * The mesh's trust domains (set by the mesh when it has an `identity`): peers are then judged
   * by their own domain's bundle, and alias domains count as the own one in principals and
   * `context.trust.callers`.
   */
  set trust(trust: InboundTrust | undefined) {
    this.#trust = trust;
    this.#canonicalCallers = this.#canonical(this.#callers);
  }

  #canonical(ids: ReadonlySet<string> | undefined): ReadonlySet<string> | undefined {
    const t = this.#trust;
    return ids && t ? new Set([...ids].map((id) => t.canonicalId(id))) : ids;
  }

  /** True when some trust rule limits who may set context. */
  get restricted(): boolean {
    return this.#callers !== undefined || this.#verifier !== undefined;
  }

  current(): MeshContext | undefined {
    return this.#als.getStore()?.ctx;
  }

  run<T>(ctx: MeshContext, fn: () => T): T {
    return this.#als.run({ ctx }, fn);
  }

  /** Builds a MeshContext from code (queue consumers, jobs). Code is trusted. */
  fromInit(init: ContextInit | MeshContext): MeshContext {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(init.headers ?? {}))
      if (typeof v === 'string') headers[k.toLowerCase()] = v;
    let deadlineAt = (init as MeshContext).deadlineAt;
    const ms = (init as ContextInit).deadlineMs;
    if (typeof ms === 'number' && Number.isFinite(ms)) deadlineAt = this.#clock() + Math.max(0, ms);
    const dl = headers[DEADLINE_HEADER];
    if (dl !== undefined) {
      delete headers[DEADLINE_HEADER];
      const n = parseDeadline(dl);
      if (n !== undefined && deadlineAt === undefined) deadlineAt = this.#clock() + n;
    }
    return Object.freeze({ headers: Object.freeze(headers), principal: init.principal, deadlineAt });
  }

  /**
   * Reads an inbound request: the request target is normalized first (400 when it cannot be),
   * then authorization judges the normalized path (a refused request gets no context), then
   * trust, the configured headers, trace headers, baggage and deadline. In `rewrite` mode
   * `req.url` becomes the normalized target, so the app routes the path the policy judged.
   * Untrusted context headers are removed from every header view of the request (`headers`,
   * `headersDistinct`, `rawHeaders`), so service code never reads a forged value; values from a
   * verified token are written into them.
   *
   * Synchronous unless the request carries a signed token that is not in the verifier's cache:
   * then the result comes once the token is verified (WebCrypto is async).
   */
  enter(req: IncomingMessage, mode: InboundMode = 'rewrite'): InboundResult | Promise<InboundResult> {
    this.counters.inbound++;
    // Express rewrites req.url under a mounted router; originalUrl is what the caller sent.
    // (Fastify's rewriteUrl sets originalUrl too, but routes req.url: `routed` mode reads that.)
    const original = mode === 'rewrite' ? (req as ExpressLike).originalUrl : undefined;
    const target = original ?? req.url ?? '/';
    const normalized = normalizeTarget(target, this.paths);
    if (typeof normalized !== 'string') return this.#badRequest(normalized);
    const trust = this.#trust;
    let principal: string | undefined;
    if (trust === undefined) principal = peerPrincipal(req.socket);
    else {
      const verdict = trust.verifyPeer(req.socket);
      if (verdict.refused !== undefined) {
        // A certificate that no bundle of its own trust domain vouches for: refused whatever the
        // policies say (the connection is closed at the handshake when watchServerTls is used).
        this.counters.denied++;
        return { denied: { status: 403, reason: verdict.refused }, ctx: EMPTY };
      }
      principal = verdict.principal;
    }
    if (this.#authz.length > 0) {
      const decision: AuthzDecision = authorize(
        this.#authz,
        { principal, method: req.method ?? 'GET', path: pathOf(normalized) },
        this.#pathCase,
        trust === undefined ? undefined : (id) => trust.policyId(id),
      );
      if (!decision.allowed) {
        this.counters.denied++;
        return { denied: { status: 403, reason: decision.reason }, ctx: EMPTY };
      }
    }
    if (normalized !== target) {
      const why =
        mode === 'routed'
          ? `the request target normalizes to ${normalized}, but the server routed it before mesh.inbound() ran (Fastify: pass rewriteUrl: meshRewriteUrl(mesh))`
          : rewriteUrl(req as ExpressLike, normalized, original);
      if (why !== undefined) return this.#badRequest({ rejected: true, reason: why });
    }
    const verifier = this.#verifier;
    const token = verifier ? first(req.headers[this.#tokenHeader as string]) : undefined;
    if (verifier === undefined || token === undefined) return this.#read(req, principal, undefined);
    const now = this.wallClock();
    const hit = verifier.cached(token, now);
    if (hit !== undefined) return this.#read(req, principal, hit);
    return verifier.verify(token, now).then((r) => this.#read(req, principal, r));
  }

  /** The rest of enter(), once the token (if any) is verified. */
  #read(req: IncomingMessage, principal: string | undefined, verified: JwsResult | undefined): InboundResult {
    const h = req.headers;
    const out: Record<string, string> = {};
    const plainTrusted =
      !this.restricted ||
      (principal !== undefined &&
        this.#canonicalCallers?.has(this.#trust ? this.#trust.canonicalId(principal) : principal) === true);
    let claims: Readonly<Record<string, unknown>> | undefined;
    // Header edits, applied once at the end (rare: only forged, refused or token-given values).
    let remove: Set<string> | undefined;
    let set: Map<string, string> | undefined;
    const tokenHeader = this.#tokenHeader as string;
    if (verified?.ok) {
      claims = verified.claims;
      out[tokenHeader] = first(h[tokenHeader]) as string;
    } else if (verified) {
      this.counters.invalidTokens++;
      remove = new Set([tokenHeader]);
      this.#logger.debug({ reason: verified.reason }, 'signed context token refused');
    }
    let stripped = 0;
    for (const name of this.headers) {
      const claim = claims?.[name];
      if (claims && claim !== undefined) {
        const v = typeof claim === 'string' ? claim : JSON.stringify(claim);
        out[name] = v;
        set ??= new Map();
        set.set(name, v);
        continue;
      }
      const v = joined(h[name]);
      if (v === undefined) continue;
      // With a valid token, its claims are the whole context: plain headers beside it are not trusted
      // unless the caller is itself trusted.
      if (plainTrusted) out[name] = v;
      else {
        stripped++;
        if (remove === undefined) remove = new Set();
        remove.add(name);
      }
    }
    if (stripped > 0) {
      this.counters.untrusted++;
      this.counters.strippedHeaders += stripped;
    } else this.counters.accepted++;
    const tp = first(h.traceparent);
    if (tp !== undefined && validTraceparent(tp)) {
      out.traceparent = tp;
      const ts = joined(h.tracestate);
      if (ts !== undefined) out.tracestate = ts;
    }
    if (this.baggage) {
      const b = joined(h[BAGGAGE_HEADER]);
      if (b !== undefined) out[BAGGAGE_HEADER] = b;
    }
    let deadlineAt: number | undefined;
    const dl = first(h[DEADLINE_HEADER]);
    if (dl !== undefined) {
      const ms = parseDeadline(dl);
      if (ms !== undefined) deadlineAt = this.#clock() + ms;
    }
    if (remove !== undefined || set !== undefined) editRequestHeaders(req, remove ?? NONE, set ?? NO_SET);
    const ctx = Object.freeze({ headers: Object.freeze(out), principal, deadlineAt });
    return { ctx };
  }

  /** The normalized request target, or why it is refused (for Fastify's rewriteUrl). */
  normalize(target: string): string | PathRejection {
    return normalizeTarget(target, this.paths);
  }

  #badRequest(r: PathRejection): InboundResult {
    this.counters.badRequests++;
    return { denied: { status: 400, reason: r.reason }, ctx: EMPTY };
  }

  /**
   * The headers to add to one outbound request: the context's, plus the remaining deadline.
   * Returns undefined outside any context.
   */
  outbound(): Record<string, string> | undefined {
    const ctx = this.current();
    if (!ctx) return undefined;
    const out: Record<string, string> = { ...ctx.headers };
    if (ctx.deadlineAt !== undefined)
      out[DEADLINE_HEADER] = String(Math.max(0, Math.floor(ctx.deadlineAt - this.#clock())));
    return out;
  }
}

const EMPTY: MeshContext = Object.freeze({ headers: Object.freeze({}) });
const NONE: ReadonlySet<string> = new Set();
const NO_SET: ReadonlyMap<string, string> = new Map();

/**
 * Sets `req.url` (and Express's `originalUrl`) to the normalized target. Under an Express mount
 * (`app.use('/api', mesh.inbound())`) req.url is relative to `req.baseUrl`: the normalized path
 * must stay under it. Returns why it cannot, or undefined.
 */
function rewriteUrl(req: ExpressLike, normalized: string, original: string | undefined): string | undefined {
  if (original === undefined || original === req.url) {
    req.url = normalized;
    if (original !== undefined) req.originalUrl = normalized;
    return undefined;
  }
  const base = req.baseUrl ?? '';
  const rest = normalized.slice(base.length);
  if (!normalized.startsWith(base) || (rest !== '' && rest[0] !== '/' && rest[0] !== '?')) {
    return `the request target normalizes to ${normalized}, outside the mount point ${base} of mesh.inbound()`;
  }
  req.originalUrl = normalized;
  req.url = rest === '' || rest[0] === '?' ? `/${rest}` : rest;
  return undefined;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function joined(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

function parseDeadline(v: string): number | undefined {
  if (!/^\d{1,12}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}
