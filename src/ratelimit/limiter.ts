/**
 * The rate-limit decision for one request, for one block of config (the mesh's inbound block,
 * or one service's outbound block). In order:
 *
 *   1. `match`: a request outside it is neither identified nor counted.
 *   2. Identity (plans, claim keys): the JWT is verified, the credentials identify the application
 *      and its plan; a missing credential is 401, an invalid one 403 (configurable), and nothing
 *      is counted for either.
 *   3. What is counted: every policy whose `match` holds (by its key), and the plan's limits for
 *      each metric the mapping rules count (no rule matched: 404, as APIcast answers).
 *   4. Every counter takes its tokens; if one that is not in shadow mode refuses, the tokens the
 *      others took are given back and the request is refused (429 with Retry-After). Shadow
 *      policies are counted and reported, never refuse.
 *
 * Synchronous whenever the store can answer locally (in-process counting, a lease with tokens
 * left, a cached JWT); a promise otherwise, bounded by the store's timeout.
 */

import { compileRoutes, type RouteTable } from '../routing/match.ts';
import type { HttpRoute } from '../routing/schema.ts';
import type { Logger } from '../telemetry/logger.ts';
import { type Claims, Credentials, claimsOf, type IdResult, quote } from './credentials.ts';
import type { JwtVerifier } from './jwt.ts';
import { encodeKeyPart, type Identity, type LimitRequest, requestKey, SHARED_KEY } from './keys.ts';
import { type CompiledLimit, compileLimit, windowSeconds } from './limits.ts';
import { compileMappingRules, HITS, type MappingRules, type Usage } from './mapping.ts';
import { rateLimitInstruments } from './metrics.ts';
import type { AnswersConfig, KeySource, RateLimitBlock } from './schema.ts';
import { keyParts } from './schema.ts';
import {
  ALLOWED,
  type Counter,
  type CounterStore,
  type LimitView,
  type Namespace,
  STORE_DOWN,
  type TakeResult,
} from './store.ts';
import type { UsageBook } from './usage.ts';

/** The mesh's own answer to a refused request. */
export interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string>;
  /** Why, for logs and the 403/401 reasons: missingCredential, invalidCredential, overLimit... */
  readonly kind: keyof AnswersConfig;
}

export interface Verdict {
  /** Set when the request is refused. */
  readonly refusal?: Answer | undefined;
  /** Response headers for an allowed request (RateLimit-Policy, RateLimit...). */
  readonly headers?: Record<string, string> | undefined;
}

const PASS: Verdict = Object.freeze({});

/** Something counted: a policy, or one metric of a plan. */
interface Source {
  /** For the headers and the counters: the policy name, or `<plan>.<metric>`. */
  readonly label: string;
  readonly limits: readonly CompiledLimit[];
  readonly shadow: boolean;
  /** `"label/per"` per limit, quoted for the structured headers. */
  readonly items: readonly string[];
  /** `RateLimit-Policy` items per limit (`"label/per";q=…;w=…`); undefined for a month (its length varies). */
  readonly policyItems: readonly (string | undefined)[];
  readonly stats: { admitted: number; refused: number; shadowRefused: number };
  /** Metric attributes per decision, made once. */
  readonly attrs: Readonly<Record<Decision, Record<string, string>>>;
}

type Decision = 'allowed' | 'refused' | 'shadow_refused' | 'store_unavailable';
const DECISIONS: readonly Decision[] = ['allowed', 'refused', 'shadow_refused', 'store_unavailable'];

interface CompiledPolicy extends Source {
  readonly table: RouteTable | undefined;
  readonly parts: readonly KeySource[];
  readonly shared: boolean;
  readonly ns: Namespace;
  readonly metric: string;
}

interface PlanMetric extends Source {
  /** The plan's counters of this metric, one per application. */
  readonly ns: Namespace;
}

interface CompiledPlan {
  readonly name: string;
  readonly metrics: ReadonlyMap<string, PlanMetric>;
}

/** Usage of a metric the plan does not limit. */
interface Free {
  readonly app: string;
  readonly metric: string;
  readonly n: number;
  readonly plan: string;
}

interface Take {
  readonly source: Source;
  readonly counter: Counter;
  readonly n: number;
  readonly app: string;
  readonly metric: string;
  readonly plan: string | undefined;
}

export interface PolicySnapshot {
  scope: string;
  /** The policy's name, or `<plan>.<metric>` for a plan's limit. */
  name: string;
  kind: 'policy' | 'plan';
  limits: { requests: number; per: string; burst?: number | undefined }[];
  shadow: boolean;
  admitted: number;
  refused: number;
  shadowRefused: number;
}

export interface LimiterDeps {
  store: CounterStore;
  usage: UsageBook;
  logger: Logger;
  /** The JWT verifier for `rateLimits.jwt`, built once per block by the runtime. */
  jwt: JwtVerifier | undefined;
}

function compileSource(
  label: string,
  limits: readonly { requests: number; per: CompiledLimit['per']; burst?: number | undefined }[],
  shadow: boolean,
  scope: string,
): Source {
  const compiled = limits.map((l) => compileLimit(l));
  return {
    label,
    limits: compiled,
    shadow,
    items: compiled.map((l) => `"${label}/${l.per}"`),
    policyItems: compiled.map((l) =>
      l.windowMs > 0 ? `"${label}/${l.per}";q=${l.requests};w=${l.windowMs / 1000}` : undefined,
    ),
    stats: { admitted: 0, refused: 0, shadowRefused: 0 },
    attrs: Object.fromEntries(
      DECISIONS.map((d) => [
        d,
        {
          'meshwork.ratelimit.scope': scope,
          'meshwork.ratelimit.policy': label,
          'meshwork.ratelimit.decision': d,
        },
      ]),
    ) as unknown as Record<Decision, Record<string, string>>,
  };
}

function tableOf(match: RateLimitBlock['match']): RouteTable | undefined {
  if (match === undefined) return undefined;
  return compileRoutes([{ match, route: [] } as unknown as HttpRoute]);
}

export class Limiter {
  readonly scope: string;
  readonly #deps: LimiterDeps;
  readonly #store: CounterStore;
  readonly #match: RouteTable | undefined;
  readonly #policies: readonly CompiledPolicy[];
  readonly #plans = new Map<string, CompiledPlan>();
  readonly #credentials: Credentials<CompiledPlan> | undefined;
  readonly #rules: MappingRules | undefined;
  readonly #needsJwt: boolean;
  readonly #answers: AnswersConfig;
  readonly #draft: boolean;
  readonly #legacy: boolean;
  readonly #domain: string;
  /** Scratch for the store's views (one at a time, synchronously). */
  readonly #view: LimitView = { remaining: 0, resetMs: 0 };
  /** Requests refused, by answer kind. */
  readonly refusals: Record<keyof AnswersConfig, number> = {
    missingCredential: 0,
    invalidCredential: 0,
    overLimit: 0,
    noMatchingRule: 0,
    storeUnavailable: 0,
  };

  constructor(block: RateLimitBlock, scope: string, deps: LimiterDeps, domain = 'meshwork') {
    this.scope = scope;
    this.#deps = deps;
    this.#store = deps.store;
    this.#domain = domain;
    this.#match = tableOf(block.match);
    const scopeKey = encodeKeyPart(scope);
    this.#policies = (block.policies ?? []).map((p) => ({
      ...compileSource(p.name, p.limits, p.shadow === true, scope),
      table: tableOf(p.match),
      parts: keyParts(p.key),
      shared: p.missingKey === 'shared',
      ns: deps.store.namespace(`${scopeKey}|p|${p.name}|`),
      metric: `policy:${p.name}`,
    }));
    // One namespace per metric: an application's counts follow it from plan to plan.
    const spaces = new Map<string, Namespace>();
    const space = (metric: string) => {
      let ns = spaces.get(metric);
      if (ns === undefined) {
        ns = deps.store.namespace(`${scopeKey}|a|${metric}|`);
        spaces.set(metric, ns);
      }
      return ns;
    };
    for (const [name, plan] of Object.entries(block.plans ?? {})) {
      const metrics = new Map<string, PlanMetric>();
      for (const [metric, limits] of Object.entries(plan.limits ?? {}))
        metrics.set(metric, {
          ...compileSource(`${name}.${metric}`, limits, false, scope),
          ns: space(metric),
        });
      this.#plans.set(name, { name, metrics });
    }
    this.#credentials = block.credentials ? new Credentials(block, this.#plans) : undefined;
    this.#rules = block.mappingRules ? compileMappingRules(block.mappingRules) : undefined;
    this.#needsJwt = deps.jwt !== undefined;
    this.#answers = block.answers ?? {};
    this.#draft = block.headers?.draft ?? true;
    this.#legacy = block.headers?.legacy ?? false;
  }

  /** The decision for `req`: synchronous when it can be, else a promise (bounded by the store's timeout). */
  check(req: LimitRequest): Verdict | Promise<Verdict> {
    if (this.#match !== undefined && this.#match.match(req) === undefined) return PASS;
    const verifier = this.#deps.jwt;
    if (this.#needsJwt && verifier !== undefined) {
      const claims = claimsOf(verifier, req);
      if (claims instanceof Promise) return claims.then((c) => this.#identified(req, c));
      return this.#identified(req, claims);
    }
    return this.#identified(req, undefined);
  }

  #identified(req: LimitRequest, claims: Claims | string | undefined): Verdict | Promise<Verdict> {
    if (typeof claims === 'string' && !this.#credentials?.usesJwt)
      // Claims used as keys: a token that fails verification is refused (never counted by its claims).
      return {
        refusal: this.#answer('invalidCredential', 403, `invalid credential: JWT refused: ${claims}`),
      };
    const id: Identity = { app: undefined, claims: typeof claims === 'string' ? undefined : claims };
    let plan: CompiledPlan | undefined;
    let usage: readonly Usage[] | undefined;
    if (this.#credentials !== undefined) {
      const r: IdResult<CompiledPlan> = this.#credentials.identify(req, claims);
      if (!r.ok) {
        if (r.missing) {
          const a = this.#answer('missingCredential', 401, `credential missing: ${r.reason}`);
          if (this.#credentials.challenges.length > 0)
            a.headers['www-authenticate'] = this.#credentials.challenges
              .map((s) => `${s} realm="${this.#domain}"`)
              .join(', ');
          return { refusal: a };
        }
        return { refusal: this.#answer('invalidCredential', 403, `invalid credential: ${r.reason}`) };
      }
      id.app = r.app;
      plan = r.plan;
      usage = this.#rules ? this.#rules.usage(req.method, req.path) : HITS;
      if (usage === undefined)
        return {
          refusal: this.#answer(
            'noMatchingRule',
            404,
            `no mapping rule matched ${quote(req.method)} ${quote(req.path.split('?')[0] as string)}`,
          ),
        };
    }
    return this.#count(req, id, plan, usage);
  }

  #count(
    req: LimitRequest,
    id: Identity,
    plan: CompiledPlan | undefined,
    usage: readonly Usage[] | undefined,
  ): Verdict | Promise<Verdict> {
    const takes: Take[] = [];
    let free: Free[] | undefined;
    for (const p of this.#policies) {
      if (p.table !== undefined && p.table.match(req) === undefined) continue;
      let key = requestKey(p.parts, req, id);
      if (key === undefined) {
        if (!p.shared) continue;
        key = SHARED_KEY;
      }
      takes.push({
        source: p,
        counter: this.#store.counter(p.ns, key, p.limits),
        n: 1,
        app: key,
        metric: p.metric,
        plan: undefined,
      });
    }
    if (plan !== undefined && usage !== undefined) {
      const app = id.app as string;
      const appKey = encodeKeyPart(app);
      for (const u of usage) {
        const source = plan.metrics.get(u.metric);
        if (source === undefined || u.delta === 0) {
          // A metric the plan does not limit: usage only, counted if the request is admitted.
          if (free === undefined) free = [];
          free.push({ app, metric: u.metric, n: u.delta, plan: plan.name });
          continue;
        }
        takes.push({
          source,
          counter: this.#store.counter(source.ns, appKey, source.limits),
          n: u.delta,
          app,
          metric: u.metric,
          plan: plan.name,
        });
      }
    }
    if (takes.length === 0) {
      if (free !== undefined) this.#free(free, this.#store.wall());
      return PASS;
    }
    const wall = this.#store.wall();
    const results: (TakeResult | Promise<TakeResult>)[] = [];
    let pending = false;
    for (let i = 0; i < takes.length; i++) {
      const t = takes[i] as Take;
      const r = this.#store.take(t.counter, t.n, wall);
      if (typeof r !== 'number') pending = true;
      results.push(r);
    }
    if (pending) return Promise.all(results).then((r) => this.#decide(takes, r, free, this.#store.wall()));
    return this.#decide(takes, results as TakeResult[], free, wall);
  }

  /** Usage of metrics the plan does not limit, for an admitted request. */
  #free(free: readonly Free[], wall: number): void {
    const inst = rateLimitInstruments();
    for (const f of free) {
      const row = this.#deps.usage.row(this.scope, f.app, f.metric, f.plan);
      this.#deps.usage.addTo(row, f.n, wall);
      if (row.attrs !== undefined) inst.usage.add(f.n, row.attrs);
    }
  }

  #decide(
    takes: readonly Take[],
    results: readonly TakeResult[],
    free: readonly Free[] | undefined,
    wall: number,
  ): Verdict {
    let refusedBy: Take | undefined;
    let storeDown = false;
    let retryMs = 0;
    for (let i = 0; i < takes.length; i++) {
      const t = takes[i] as Take;
      const r = results[i] as TakeResult;
      if (r === ALLOWED) continue;
      if (t.source.shadow) {
        t.source.stats.shadowRefused++;
        this.#record(t, 'shadow_refused');
        continue;
      }
      if (r === STORE_DOWN) storeDown = true;
      refusedBy ??= t;
      retryMs = Math.max(retryMs, t.counter.retryAfterMs);
    }
    if (refusedBy === undefined) {
      const inst = rateLimitInstruments();
      const usage = this.#deps.usage;
      for (let i = 0; i < takes.length; i++) {
        const t = takes[i] as Take;
        if ((results[i] as TakeResult) === ALLOWED) {
          t.source.stats.admitted++;
          inst.decisions.add(1, t.source.attrs.allowed);
        }
        let row = t.counter.usage;
        if (row === undefined) {
          row = usage.row(this.scope, t.app, t.metric, t.plan);
          t.counter.usage = row;
        } else if (t.plan !== undefined) usage.notePlan(row, t.plan);
        usage.addTo(row, t.n, wall);
        if (row.attrs !== undefined) inst.usage.add(t.n, row.attrs);
      }
      if (free !== undefined) this.#free(free, wall);
      return this.#draft || this.#legacy ? { headers: this.#headers(takes, wall) } : PASS;
    }
    // Refused: the tokens the others took go back; the refused request counts for nobody.
    for (let i = 0; i < takes.length; i++) {
      const t = takes[i] as Take;
      if ((results[i] as TakeResult) === ALLOWED) this.#store.refund(t.counter, t.n);
      if (!t.source.shadow && (results[i] as TakeResult) !== ALLOWED) {
        t.source.stats.refused++;
        this.#record(t, storeDown ? 'store_unavailable' : 'refused');
        this.#deps.usage.refused(this.scope, t.app, t.metric, t.plan);
      }
    }
    const retryAfter = String(Math.max(1, Math.ceil(retryMs / 1000)));
    const headers = this.#headers(takes, wall);
    headers['retry-after'] = retryAfter;
    if (storeDown) {
      const a = this.#answer('storeUnavailable', 503, 'rate limits unavailable: the store cannot be reached');
      Object.assign(a.headers, headers);
      return { refusal: a };
    }
    // Name the limits that ran out (all of the source's when the view cannot tell).
    const src = refusedBy.source;
    const by = refusedBy;
    let spent = src.limits
      .map((_, i) => i)
      .filter((i) => this.#store.view(by.counter, i, wall, this.#view).remaining < by.n);
    if (spent.length === 0) spent = src.limits.map((_, i) => i);
    const a = this.#answer(
      'overLimit',
      429,
      `rate limit exceeded: ${spent
        .map(
          (i) =>
            `${(src.items[i] as string).slice(1, -1)} (${(src.limits[i] as CompiledLimit).requests} per ${(src.limits[i] as CompiledLimit).per})`,
        )
        .join(', ')}`,
    );
    Object.assign(a.headers, headers);
    return { refusal: a };
  }

  #record(t: Take, decision: Decision): void {
    rateLimitInstruments().decisions.add(1, t.source.attrs[decision]);
  }

  /** `RateLimit-Policy` and `RateLimit` (IETF draft) and the legacy trio, for the limits that apply. */
  #headers(takes: readonly Take[], wall: number): Record<string, string> {
    const out: Record<string, string> = {};
    const view = this.#view;
    let policy = '';
    let state = '';
    let tightQ = 0;
    let tightR = Number.POSITIVE_INFINITY;
    let tightT = 0;
    for (const t of takes) {
      if (t.source.shadow) continue;
      const limits = t.source.limits;
      for (let i = 0; i < limits.length; i++) {
        const l = limits[i] as CompiledLimit;
        this.#store.view(t.counter, i, wall, view);
        const secs = view.resetMs > 0 ? Math.ceil(view.resetMs / 1000) : 0;
        if (this.#draft) {
          const item = t.source.items[i] as string;
          const p = t.source.policyItems[i] ?? `${item};q=${l.requests};w=${windowSeconds(l, wall)}`;
          policy = policy === '' ? p : `${policy}, ${p}`;
          const st = `${item};r=${view.remaining};t=${secs}`;
          state = state === '' ? st : `${state}, ${st}`;
        }
        if (view.remaining < tightR) {
          tightQ = l.requests;
          tightR = view.remaining;
          tightT = secs;
        }
      }
    }
    if (this.#draft && policy) {
      out['ratelimit-policy'] = policy;
      out.ratelimit = state;
    }
    if (this.#legacy && tightR !== Number.POSITIVE_INFINITY) {
      out['x-ratelimit-limit'] = String(tightQ);
      out['x-ratelimit-remaining'] = String(tightR);
      out['x-ratelimit-reset'] = String(tightT);
    }
    return out;
  }

  #answer(kind: keyof AnswersConfig, status: number, body: string): Answer {
    this.refusals[kind]++;
    const a = this.#answers[kind];
    return {
      kind,
      status: a?.status ?? status,
      body: `${a?.message ?? body}\n`,
      headers: {},
    };
  }

  snapshot(): PolicySnapshot[] {
    const out: PolicySnapshot[] = [];
    const limits = (s: Source) =>
      s.limits.map((l) => ({
        requests: l.requests,
        per: l.per,
        ...(l.gcra && l.burst !== l.requests ? { burst: l.burst } : {}),
      }));
    for (const p of this.#policies)
      out.push({
        scope: this.scope,
        name: p.label,
        kind: 'policy',
        limits: limits(p),
        shadow: p.shadow,
        ...p.stats,
      });
    for (const plan of this.#plans.values())
      for (const s of plan.metrics.values())
        out.push({
          scope: this.scope,
          name: s.label,
          kind: 'plan',
          limits: limits(s),
          shadow: false,
          ...s.stats,
        });
    return out;
  }
}
