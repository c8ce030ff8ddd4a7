/**
 * `rateLimits` (top level, enforced by mesh.inbound()) and `services.<name>.rateLimits`
 * (enforced on outbound calls to that service). Every field is described in docs/rate-limits.md.
 *
 * Wiring (src/config/schema.ts): `rateLimits: rateLimitsSchema.optional()` on the mesh,
 * `rateLimits: serviceRateLimitsSchema.optional()` on a service, and `rateLimitIssues(config)`
 * for the checks across fields (context headers, discovery-counted replicas).
 */
import { z } from 'zod';
import { durationAtLeast, userRecord } from '../config/zod-helpers.ts';
import { matchSchema } from '../routing/schema.ts';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headerName = z
  .string()
  .regex(HEADER_NAME, 'is not a valid HTTP header name')
  .transform((h) => h.toLowerCase());

/** Policy, plan, metric and application names: they appear in headers and counter keys. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const name = (what: string) =>
  z.string().regex(NAME, `is not a valid ${what} name (letters, digits, "_", ".", ":", "-"; at most 64)`);

export const PERIODS = ['1s', '1m', '1h', '1d', 'month'] as const;
export type Period = (typeof PERIODS)[number];

/** The most requests one limit may allow (beyond this, leave the route unlimited). */
export const MAX_REQUESTS = 1_000_000_000;

export const limitSchema = z
  .strictObject({
    requests: z.number().int().positive().max(MAX_REQUESTS),
    per: z.enum(PERIODS),
    /**
     * 1s and 1m only: how many requests may pass at once (the token bucket's size). Default:
     * `requests`. The window's own count still caps the period at `requests`.
     */
    burst: z.number().int().positive().optional(),
  })
  .superRefine((l, ctx) => {
    if (l.burst === undefined) return;
    if (l.per !== '1s' && l.per !== '1m')
      ctx.addIssue({
        code: 'custom',
        path: ['burst'],
        input: l.burst,
        message: `applies to "1s" and "1m" limits only ("${l.per}" is a calendar quota: all of it may be used at once)`,
      });
    else if (l.burst > l.requests)
      ctx.addIssue({
        code: 'custom',
        path: ['burst'],
        input: l.burst,
        message: `is more than requests (${l.requests}): the window would refuse the rest anyway`,
      });
  });

const limitsSchema = z
  .array(limitSchema)
  .min(1)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((l, i) => {
      if (seen.has(l.per))
        ctx.addIssue({
          code: 'custom',
          path: [i, 'per'],
          input: l.per,
          message: 'is limited twice in this list: keep the lower one',
        });
      seen.add(l.per);
    });
  });

/** One part of what a policy counts by. Exactly one field is set. */
export const keySourceSchema = z
  .strictObject({
    /** A request header (its first value). */
    header: headerName.optional(),
    /** A field of the request's gateway context (one of `context.headers`). */
    context: headerName.optional(),
    /** The caller's SPIFFE ID (verified mTLS peer; outbound: the current request's caller). */
    principal: z.literal(true).optional(),
    /** A query parameter (decoded, first value). */
    query: z.string().min(1).max(256).optional(),
    /** A claim of the verified JWT (`rateLimits.jwt`). */
    claim: z.string().min(1).max(256).optional(),
    /** The application the credentials identified (`credentials`). */
    application: z.literal(true).optional(),
  })
  .superRefine((k, ctx) => {
    const set = Object.keys(k).filter((f) => (k as Record<string, unknown>)[f] !== undefined);
    if (set.length !== 1)
      ctx.addIssue({
        code: 'custom',
        input: undefined,
        message:
          set.length === 0
            ? 'names nothing to count by: set one of header, context, principal, query, claim, application'
            : `sets ${set.join(' and ')}: a key part names one thing (list several parts for a composite key)`,
      });
  });

export type KeySource = z.output<typeof keySourceSchema>;

export const policySchema = z.strictObject({
  name: name('policy'),
  /** Istio HTTPMatchRequest list, as routes use it; none = every request. */
  match: z.array(matchSchema).min(1).optional(),
  /** What is counted: one key part, or several for a composite key. */
  key: z.union([keySourceSchema, z.array(keySourceSchema).min(1).max(4)]),
  limits: limitsSchema,
  /** Count and report, never refuse. */
  shadow: z.boolean().optional(),
  /** A request without the key: `skip` the policy (default, as Envoy) or count it in one `shared` bucket. */
  missingKey: z.enum(['skip', 'shared']).optional(),
});

export type RateLimitPolicy = z.output<typeof policySchema>;

const policiesSchema = z.array(policySchema).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((p, i) => {
    if (seen.has(p.name))
      ctx.addIssue({
        code: 'custom',
        path: [i, 'name'],
        input: p.name,
        message: 'is used by another policy: names must be unique',
      });
    seen.add(p.name);
  });
});

export const planSchema = z.strictObject({
  /** Limits per metric (`hits` is what every request counts when there are no mapping rules). */
  limits: userRecord(name('metric'), limitsSchema).optional(),
});

const keyValue = z.string().min(8, 'must be at least 8 characters').max(256);

export const applicationSchema = z.strictObject({
  plan: name('plan'),
  /** `user_key` values of this application. */
  userKeys: z.array(keyValue).optional(),
  /** `app_key` values (the application's name is its `app_id`). */
  appKeys: z.array(keyValue).optional(),
});

/** Where a credential is read: a header or a query parameter. */
const locationSchema = z
  .strictObject({ header: headerName.optional(), query: z.string().min(1).max(256).optional() })
  .superRefine((l, ctx) => {
    if ((l.header === undefined) === (l.query === undefined))
      ctx.addIssue({ code: 'custom', input: undefined, message: 'set exactly one of header, query' });
  });

export const credentialSchema = z
  .strictObject({
    /** An API key (3scale `user_key`). */
    userKey: locationSchema.optional(),
    /** 3scale `app_id` + `app_key`. */
    appId: locationSchema.optional(),
    appKey: locationSchema.optional(),
    /** The verified JWT (`rateLimits.jwt`): the claim naming the application, and the plan's. */
    jwt: z
      .strictObject({ app: z.string().min(1).default('azp'), plan: z.string().min(1).optional() })
      .optional(),
    /** The verified gateway context (`context.headers`): the fields naming the application and plan. */
    context: z.strictObject({ app: headerName, plan: headerName.optional() }).optional(),
  })
  .superRefine((c, ctx) => {
    const kinds = [
      c.userKey && 'userKey',
      (c.appId || c.appKey) && 'appId/appKey',
      c.jwt && 'jwt',
      c.context && 'context',
    ].filter(Boolean);
    if (kinds.length !== 1)
      ctx.addIssue({
        code: 'custom',
        input: undefined,
        message:
          kinds.length === 0
            ? 'names no credential: set userKey, appId + appKey, jwt or context'
            : `sets ${kinds.join(' and ')}: list them as separate credentials (the first one present is used)`,
      });
    if ((c.appId === undefined) !== (c.appKey === undefined))
      ctx.addIssue({ code: 'custom', input: undefined, message: 'appId and appKey go together' });
  });

export type CredentialConfig = z.output<typeof credentialSchema>;

const JWT_ALGS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'EdDSA',
] as const;

export const jwtSchema = z
  .strictObject({
    /** Header carrying the token (`Bearer` prefix optional). Default `authorization`. */
    header: headerName.optional(),
    hmacSecret: z.string().min(32, 'must be at least 32 characters').optional(),
    /** PEM public key (RSA, EC P-256/P-384, Ed25519). */
    publicKey: z.string().min(1).optional(),
    /** A JWKS URL (Keycloak, Auth0, 3scale's OIDC providers), fetched and cached by jose. */
    jwksUri: z.url({ protocol: /^https?$/ }).optional(),
    algorithms: z.array(z.enum(JWT_ALGS)).min(1).optional(),
    issuer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    clockSkew: durationAtLeast(0, '')
      .refine((ms) => ms <= 300_000, 'must be at most 5m')
      .optional(),
  })
  .superRefine((j, ctx) => {
    const n = [j.hmacSecret, j.publicKey, j.jwksUri].filter((v) => v !== undefined).length;
    if (n !== 1)
      ctx.addIssue({
        code: 'custom',
        input: j,
        message: 'set exactly one of hmacSecret, publicKey, jwksUri',
      });
  });

export type JwtConfig = z.output<typeof jwtSchema>;

export const mappingRuleSchema = z.strictObject({
  /** HTTP method; none = any. */
  method: z
    .string()
    .regex(/^[A-Za-z]+$/)
    .transform((m) => m.toUpperCase())
    .optional(),
  /** 3scale pattern: `/trips/{id}`, `$` at the end for an exact path, `?name={value}` for a query parameter. */
  pattern: z
    .string()
    .startsWith('/', 'must start with "/"')
    .max(1024)
    .regex(/^[^\s#]*$/, 'cannot contain spaces or "#"'),
  metric: name('metric'),
  delta: z.number().int().min(0).max(1_000_000).default(1),
  /** Stop at this rule when it matches. */
  last: z.boolean().optional(),
});

export type MappingRule = z.output<typeof mappingRuleSchema>;

const answerSchema = z.strictObject({
  status: z.number().int().min(400).max(599).optional(),
  message: z
    .string()
    .max(1024)
    .regex(/^[^\r\n\0]*$/, 'must be one line')
    .optional(),
});

export const answersSchema = z.strictObject({
  /** No credential found. Default 401. */
  missingCredential: answerSchema.optional(),
  /** A credential that is wrong: unknown key, bad JWT, unknown plan. Default 403. */
  invalidCredential: answerSchema.optional(),
  /** Over a limit. Default 429, always with Retry-After. */
  overLimit: answerSchema.optional(),
  /** Mapping rules configured, none matched (3scale). Default 404. */
  noMatchingRule: answerSchema.optional(),
  /** `onFailure: closed` and the store cannot be reached. Default 503. */
  storeUnavailable: answerSchema.optional(),
});

export type AnswersConfig = z.output<typeof answersSchema>;

const headersSchema = z.strictObject({
  /** `RateLimit-Policy` and `RateLimit` (IETF draft). Default true. */
  draft: z.boolean().optional(),
  /** `X-RateLimit-Limit`, `-Remaining`, `-Reset` for the tightest limit. Default false. */
  legacy: z.boolean().optional(),
});

/** What a rate-limit block holds, at the top level and per service (the store is the mesh's). */
const commonFields = {
  /** Which requests rate limits look at (identified and counted); none = all. */
  match: z.array(matchSchema).min(1).optional(),
  policies: policiesSchema.optional(),
  plans: userRecord(name('plan'), planSchema).optional(),
  applications: userRecord(name('application'), applicationSchema).optional(),
  credentials: z.array(credentialSchema).min(1).optional(),
  jwt: jwtSchema.optional(),
  mappingRules: z.array(mappingRuleSchema).min(1).optional(),
  answers: answersSchema.optional(),
  headers: headersSchema.optional(),
};

export const storeSchema = z
  .strictObject({
    /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). None: counting is in-process. */
    redis: z
      .string()
      .regex(/^rediss?:\/\/[^\s]+$/, 'is not a redis:// or rediss:// URL')
      .optional(),
    /** The URL is one node of a Redis Cluster (the others are discovered). */
    cluster: z.boolean().optional(),
    /** lease (default): batches of tokens spent locally; exact: one call per request; local: per process. */
    mode: z.enum(['lease', 'exact', 'local']).optional(),
    /** When the store cannot be reached: local (default) limits, open (allow) or closed (refuse). */
    onFailure: z.enum(['local', 'open', 'closed']).optional(),
    /** Bound on one store call. Default 10ms. */
    timeout: durationAtLeast(1, '0 would fail every call').optional(),
    /**
     * How many processes share the limits, for `mode: local` and the local fallback (each takes
     * limit/N): a number, or `{ service }` to count the endpoints of a configured service.
     * Default: learned from the store (processes reporting in the last seconds), else 1.
     */
    replicas: z
      .union([z.number().int().positive().max(100_000), z.strictObject({ service: z.string().min(1) })])
      .optional(),
    /** The most tokens one lease takes. Default: the smallest limit / 20, at least 1. */
    leaseMax: z.number().int().positive().max(100_000).optional(),
    /** How often usage counts are reported to the store. Default 1s. */
    reportInterval: durationAtLeast(100, 'reports at most ten times a second').optional(),
  })
  .superRefine((s, ctx) => {
    if (s.redis === undefined) {
      for (const f of ['cluster', 'mode', 'onFailure', 'timeout', 'leaseMax', 'reportInterval'] as const)
        if (s[f] !== undefined && !(f === 'mode' && s.mode === 'local'))
          ctx.addIssue({
            code: 'custom',
            path: [f],
            input: s[f],
            message: 'needs store.redis (without a store, counting is in-process)',
          });
    }
  });

export type StoreConfig = z.output<typeof storeSchema>;

const DOMAIN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const rateLimitsSchema = z
  .strictObject({
    /**
     * The namespace of the counters in the store: meshes with the same domain share them.
     * Required with a Redis store. (Envoy's rate limit service calls it the domain too.)
     */
    domain: z.string().regex(DOMAIN, 'is not a valid domain (letters, digits, "_", ".", "-")').optional(),
    store: storeSchema.optional(),
    ...commonFields,
  })
  .superRefine((r, ctx) => {
    if (r.store?.redis !== undefined && r.domain === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['domain'],
        input: undefined,
        message:
          'is required with store.redis: meshes with the same domain share their counters (name it after the service or the API)',
      });
    for (const issue of blockIssues(r)) ctx.addIssue({ ...issue });
  });

export const serviceRateLimitsSchema = z.strictObject(commonFields).superRefine((r, ctx) => {
  for (const issue of blockIssues(r)) ctx.addIssue({ ...issue });
});

export type RateLimitsConfig = z.output<typeof rateLimitsSchema>;
export type ServiceRateLimitsConfig = z.output<typeof serviceRateLimitsSchema>;
/** What the limiter reads from either kind of block. */
export type RateLimitBlock = ServiceRateLimitsConfig;

interface Issue {
  code: 'custom';
  path: (string | number)[];
  input: unknown;
  message: string;
}

/** Checks inside one block: plans, applications, credentials, JWT keys and claims agree. */
function blockIssues(r: ServiceRateLimitsConfig): Issue[] {
  const issues: Issue[] = [];
  const add = (path: (string | number)[], input: unknown, message: string) =>
    issues.push({ code: 'custom', path, input, message });
  const plans = r.plans ?? {};
  const hasPlans = Object.keys(plans).length > 0;
  for (const [app, a] of Object.entries(r.applications ?? {})) {
    if (!Object.hasOwn(plans, a.plan)) add(['applications', app, 'plan'], a.plan, 'is not one of the plans');
  }
  if (hasPlans && r.credentials === undefined)
    add(['credentials'], undefined, 'is required with plans: say where the application is found');
  if (!hasPlans && r.credentials !== undefined)
    add(['plans'], undefined, 'is required with credentials: the application plans to enforce');
  if (r.mappingRules !== undefined && !hasPlans)
    add(['mappingRules'], undefined, 'needs plans: mapping rules say what a request counts against its plan');
  const userKeys = new Map<string, string>();
  for (const [app, a] of Object.entries(r.applications ?? {}))
    a.userKeys?.forEach((k, i) => {
      const other = userKeys.get(k);
      if (other !== undefined)
        add(['applications', app, 'userKeys', i], undefined, `is also a user key of "${other}"`);
      userKeys.set(k, app);
    });
  const needsKeys = (r.credentials ?? []).some((c) => c.userKey || c.appId);
  if (needsKeys && Object.keys(r.applications ?? {}).length === 0)
    add(
      ['applications'],
      undefined,
      'is required with userKey or appId credentials: the keys of each application',
    );
  const usesJwt =
    (r.credentials ?? []).some((c) => c.jwt) ||
    (r.policies ?? []).some((p) => keyParts(p.key).some((k) => k.claim !== undefined));
  if (usesJwt && r.jwt === undefined)
    add(['jwt'], undefined, 'is required by a jwt credential or a claim key: how tokens are verified');
  (r.policies ?? []).forEach((p, i) => {
    if (keyParts(p.key).some((k) => k.application) && r.credentials === undefined)
      add(['policies', i, 'key'], p.key, '{ application: true } needs credentials (and plans)');
  });
  return issues;
}

export function keyParts(key: KeySource | KeySource[]): KeySource[] {
  return Array.isArray(key) ? key : [key];
}

/** The fields of the whole config that a rate-limit block refers to. */
interface MeshFields {
  context?: { headers: readonly string[] } | undefined;
  rateLimits?: RateLimitsConfig | undefined;
  services: Record<string, { rateLimits?: ServiceRateLimitsConfig | undefined }>;
}

/** Checks across the config: context fields are carried, replicas' service exists. */
export function rateLimitIssues(c: MeshFields): Issue[] {
  const issues: Issue[] = [];
  const carried = new Set(c.context?.headers ?? []);
  const check = (block: ServiceRateLimitsConfig | undefined, at: (string | number)[]) => {
    if (!block) return;
    const needContext = (field: string, path: (string | number)[]) => {
      if (!carried.has(field))
        issues.push({
          code: 'custom',
          path,
          input: field,
          message: 'is not one of context.headers: the gateway context would never hold it',
        });
    };
    (block.policies ?? []).forEach((p, i) => {
      keyParts(p.key).forEach((k, j) => {
        if (k.context !== undefined)
          needContext(k.context, [
            ...at,
            'policies',
            i,
            'key',
            ...(Array.isArray(p.key) ? [j] : []),
            'context',
          ]);
      });
    });
    (block.credentials ?? []).forEach((cr, i) => {
      if (cr.context) {
        needContext(cr.context.app, [...at, 'credentials', i, 'context', 'app']);
        if (cr.context.plan !== undefined)
          needContext(cr.context.plan, [...at, 'credentials', i, 'context', 'plan']);
      }
    });
  };
  check(c.rateLimits, ['rateLimits']);
  for (const [name, svc] of Object.entries(c.services)) {
    if (svc.rateLimits) check(svc.rateLimits, ['services', name, 'rateLimits']);
  }
  const replicas = c.rateLimits?.store?.replicas;
  if (typeof replicas === 'object' && !Object.hasOwn(c.services, replicas.service))
    issues.push({
      code: 'custom',
      path: ['rateLimits', 'store', 'replicas', 'service'],
      input: replicas.service,
      message: 'is not a configured service',
    });
  return issues;
}
