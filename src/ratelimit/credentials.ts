/**
 * Who is calling, for plans (3scale style): the credentials are tried in the configured order
 * and the first one the request carries decides. It either identifies an application (and its
 * plan), or the request is refused as carrying an invalid credential; a request with none of them
 * is refused as missing a credential. Nothing is counted before the application is known, so a
 * wrong key is never counted against the application it tried to be.
 *
 *   userKey        a key in a header or the query (`user_key`), looked up in `applications`
 *   appId + appKey the application's name and one of its keys
 *   jwt            the verified JWT (`rateLimits.jwt`): a claim names the app (`azp` by default)
 *   context        the verified gateway context: fields name the app and plan (no lookup at all)
 *
 * A plan from a JWT claim or the gateway context wins over the application's configured plan; a
 * plan that is not in `plans` is an invalid credential.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { JwtVerifier } from './jwt.ts';
import { firstValue, type LimitRequest, queryParam } from './keys.ts';
import type { CredentialConfig, RateLimitBlock } from './schema.ts';

export type IdResult<P> =
  | { readonly ok: true; readonly app: string; readonly plan: P }
  | { readonly ok: false; readonly missing: boolean; readonly reason: string };

export type Claims = Readonly<Record<string, unknown>>;

interface App {
  plan: string;
  appKeys: Buffer[];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

function where(loc: { header?: string | undefined; query?: string | undefined }): string {
  return loc.header !== undefined ? `header ${loc.header}` : `query parameter ${loc.query}`;
}

function read(
  loc: { header?: string | undefined; query?: string | undefined },
  req: LimitRequest,
): string | undefined {
  const v =
    loc.header !== undefined
      ? firstValue(req.headers[loc.header])
      : queryParam(req.path, loc.query as string);
  return v === '' ? undefined : v;
}

export class Credentials<P> {
  readonly #list: readonly CredentialConfig[];
  readonly #apps = new Map<string, App>();
  readonly #userKeys = new Map<string, string>();
  readonly #plans: ReadonlyMap<string, P>;
  /** What a 401 lists as expected. */
  readonly expected: string;
  /** `WWW-Authenticate` challenge schemes a 401 carries. */
  readonly challenges: string[];

  constructor(block: RateLimitBlock, plans: ReadonlyMap<string, P>) {
    this.#list = block.credentials ?? [];
    this.#plans = plans;
    for (const [name, a] of Object.entries(block.applications ?? {})) {
      this.#apps.set(name, { plan: a.plan, appKeys: (a.appKeys ?? []).map(digest) });
      for (const k of a.userKeys ?? []) this.#userKeys.set(k, name);
    }
    this.expected = this.#list
      .map((c) => {
        if (c.userKey) return `user_key (${where(c.userKey)})`;
        if (c.appId && c.appKey) return `app_id + app_key (${where(c.appId)}, ${where(c.appKey)})`;
        if (c.jwt) return 'a JWT';
        return `the gateway context (${c.context?.app})`;
      })
      .join(' or ');
    this.challenges = [];
    if (this.#list.some((c) => c.userKey || c.appId)) this.challenges.push('Key');
    if (this.#list.some((c) => c.jwt)) this.challenges.push('Bearer');
  }

  #plan(app: string, claimed: string | undefined): IdResult<P> {
    const name = claimed ?? this.#apps.get(app)?.plan;
    if (name === undefined)
      return { ok: false, missing: false, reason: `no plan for application ${quote(app)}` };
    const plan = this.#plans.get(name);
    if (plan === undefined) return { ok: false, missing: false, reason: `unknown plan ${quote(name)}` };
    return { ok: true, app, plan };
  }

  /**
   * Identifies the application. `claims` are the verified JWT's (undefined: no token), or the
   * reason the token was refused; the caller verified it first (see Limiter).
   */
  identify(req: LimitRequest, jwt: Claims | string | undefined): IdResult<P> {
    for (const c of this.#list) {
      if (c.userKey) {
        const key = read(c.userKey, req);
        if (key === undefined) continue;
        const app = this.#userKeys.get(key);
        if (app === undefined) return { ok: false, missing: false, reason: 'unknown user_key' };
        return this.#plan(app, undefined);
      }
      if (c.appId && c.appKey) {
        const id = read(c.appId, req);
        if (id === undefined) continue;
        const key = read(c.appKey, req);
        const app = this.#apps.get(id);
        if (app === undefined) return { ok: false, missing: false, reason: 'unknown app_id' };
        if (key === undefined) return { ok: false, missing: false, reason: 'app_key missing' };
        const d = digest(key);
        if (!app.appKeys.some((k) => timingSafeEqual(k, d)))
          return { ok: false, missing: false, reason: 'app_key does not match app_id' };
        return this.#plan(id, undefined);
      }
      if (c.jwt) {
        if (jwt === undefined) continue;
        if (typeof jwt === 'string') return { ok: false, missing: false, reason: `JWT refused: ${jwt}` };
        const app = jwt[c.jwt.app];
        if (typeof app !== 'string' || app === '')
          return {
            ok: false,
            missing: false,
            reason: `the JWT has no ${c.jwt.app} claim naming the application`,
          };
        const plan = c.jwt.plan !== undefined ? jwt[c.jwt.plan] : undefined;
        if (plan !== undefined && typeof plan !== 'string')
          return { ok: false, missing: false, reason: `the JWT's ${c.jwt.plan} claim is not a plan name` };
        return this.#plan(app, plan);
      }
      if (c.context) {
        const app = req.ctx?.headers[c.context.app];
        if (app === undefined || app === '') continue;
        const plan = c.context.plan !== undefined ? req.ctx?.headers[c.context.plan] : undefined;
        return this.#plan(app, plan === '' ? undefined : plan);
      }
    }
    return { ok: false, missing: true, reason: `send ${this.expected}` };
  }

  /** True when `token` is used to identify applications (a jwt credential is configured). */
  get usesJwt(): boolean {
    return this.#list.some((c) => c.jwt !== undefined);
  }
}

/** A name in a reason: JSON-quoted, at most 64 characters, anything but printable ASCII escaped. */
export function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Reads the JWT of a request with `verifier`: its claims, the refusal reason, undefined, or a promise. */
export function claimsOf(
  verifier: JwtVerifier,
  req: LimitRequest,
): Claims | string | undefined | Promise<Claims | string> {
  const token = verifier.token(firstValue(req.headers[verifier.header]));
  if (token === undefined) return undefined;
  const hit = verifier.cached(token);
  if (hit !== undefined) return hit;
  return verifier.verify(token).then((r) => (r.ok ? r.claims : r.reason));
}
