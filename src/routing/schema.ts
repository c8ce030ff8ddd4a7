/**
 * `services.<name>.http` (VirtualService HTTP routes) and `services.<name>.subsets`
 * (DestinationRule subsets), in Istio's vocabulary. Every field is described in docs/routing.md.
 *
 * Wiring (src/config/schema.ts):
 *   const serviceSchema = z.strictObject({ discovery, trafficPolicy, ...createRoutingFields(trafficPolicySchema) })
 * and, for references across services (a destination host or subset that does not exist):
 *   meshConfigSchema.superRefine((c, ctx) => { for (const i of routeReferenceIssues(c.services)) ctx.addIssue(i) })
 * `createRoutingFields` takes the trafficPolicy schema (a subset's policy overrides the service's)
 * so this file does not import src/config/schema.ts (that would be an import cycle).
 */
import { z } from 'zod';
import { duration, labels, percentage, userRecord } from '../config/zod-helpers.ts';
import { chaosSchema, faultSchema } from '../fault/schema.ts';
import { retriesSchema } from '../retry/schema.ts';
import { regexProblem } from './regex.ts';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const SERVICE_HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

export const headerName = z.string().regex(HEADER_NAME, 'is not a valid HTTP header name');

/**
 * An HTTP field value as undici (and node:http) send it: visible ASCII, spaces, tabs and
 * Latin-1 (RFC 9110 field-vchar and obs-text). CR, LF, NUL and the other control characters are
 * refused here, at config time: undici would refuse every request carrying them.
 */
export const headerValue = z
  .string()
  .regex(
    /^[\t\x20-\x7e\x80-\xff]*$/,
    'cannot be sent in an HTTP header (control characters such as CR, LF and NUL, and characters above U+00FF, are refused)',
  );

/** An RE2-syntax regex (see src/routing/regex.ts), checked once here. */
export const regexString = z.string().superRefine((value, ctx) => {
  const problem = regexProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `is not a usable regex: ${problem}` });
});

/** Istio's StringMatch: one of exact, prefix, regex; `{}` (in headers, queryParams) = present. */
export const stringMatchSchema = z
  .strictObject({
    exact: z.string().optional(),
    prefix: z.string().optional(),
    regex: regexString.optional(),
  })
  .superRefine((m, ctx) => {
    const set = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined);
    if (set.length > 1) {
      ctx.addIssue({ code: 'custom', input: undefined, message: `sets ${set.join(' and ')}: use only one` });
    }
  });

/** One match block: its conditions are ANDed; the blocks of a route are ORed. */
export const matchSchema = z.strictObject({
  name: z.string().optional(),
  uri: stringMatchSchema.optional(),
  /** `http` or `https`, the scheme of the request URL. */
  scheme: stringMatchSchema.optional(),
  method: stringMatchSchema.optional(),
  headers: userRecord(headerName, stringMatchSchema).optional(),
  withoutHeaders: userRecord(headerName, stringMatchSchema).optional(),
  queryParams: userRecord(z.string().min(1), stringMatchSchema).optional(),
  ignoreUriCase: z.boolean().optional(),
  /** The port of the request URL (80 or 443 when the URL has none). */
  port: z.number().int().min(1).max(65535).optional(),
  /**
   * This workload's own labels (the mesh's `labels`) must include these: decided once at
   * createMesh, since the caller is always this process.
   */
  sourceLabels: labels.optional(),
});

export const headerOpsSchema = z.strictObject({
  set: userRecord(headerName, headerValue).optional(),
  add: userRecord(headerName, headerValue).optional(),
  remove: z.array(headerName).optional(),
});

export const headersSchema = z.strictObject({
  request: headerOpsSchema.optional(),
  response: headerOpsSchema.optional(),
});

export const portSelector = z.strictObject({ number: z.number().int().min(1).max(65535) });

/** Where a route sends: `host` defaults to the service that owns the route. */
export const destinationSchema = z.strictObject({
  host: z.string().regex(SERVICE_HOST, 'is not a service name').optional(),
  subset: z.string().min(1).optional(),
  port: portSelector.optional(),
});

export const routeDestinationSchema = z.strictObject({
  destination: destinationSchema,
  /** A percentage (fractions allowed: fromIstio scales Istio's relative weights to 100). */
  weight: z.number().min(0).max(100).optional(),
  headers: headersSchema.optional(),
});

/**
 * Weights: none set = an even split; otherwise an unset weight is 0 and the set ones must sum
 * to 100 (a single destination without weight gets everything).
 */
export const routeListSchema = z
  .array(routeDestinationSchema)
  .min(1)
  .superRefine((list, ctx) => {
    const given = list.filter((d) => d.weight !== undefined);
    if (given.length === 0) return;
    const sum = given.reduce((s, d) => s + (d.weight as number), 0);
    // Fractions (33.33 + 66.67...) may miss 100 by a rounding error, never by more.
    if (Math.abs(sum - 100) > 1e-6) {
      const missing = list.length - given.length;
      ctx.addIssue({
        code: 'custom',
        input: undefined,
        message:
          `weights sum to ${Number(sum.toFixed(6))}, not 100` +
          (missing > 0 ? ` (${missing} destination(s) without weight count as 0)` : ''),
      });
    }
  });

export const rewriteSchema = z
  .strictObject({
    uri: z
      .string()
      .startsWith('/', 'must start with "/"')
      // What undici accepts in a request path (it would refuse every request otherwise).
      .regex(
        /^[\x21-\xff]*$/,
        'cannot be sent as a request path (percent-encode spaces, control characters such as CR, LF and NUL, and characters above U+00FF)',
      )
      .optional(),
    /** The Host header to send: a host or host:port (RFC 3986 reg-name, IPv4 or [IPv6]). */
    authority: z
      .string()
      .regex(
        /^[A-Za-z0-9\-._~%!$&'()*+,;=:[\]]+$/,
        'is not a valid authority (a host or host:port: no spaces, control characters, "/", "?", "#" or "@")',
      )
      .optional(),
    /**
     * Istio's uriRegexRewrite (Envoy's regex_rewrite): every match of `match` in the path (not
     * the query) is replaced by `rewrite`, where `\\1` stands for the first group.
     */
    uriRegexRewrite: z.strictObject({ match: regexString, rewrite: z.string() }).optional(),
  })
  .refine((r) => r.uri !== undefined || r.authority !== undefined || r.uriRegexRewrite !== undefined, {
    message: 'needs uri, authority or uriRegexRewrite',
  })
  .refine((r) => r.uri === undefined || r.uriRegexRewrite === undefined, {
    message: 'sets uri and uriRegexRewrite: use only one (Istio)',
  });

/** `retries` on a route: the same schema as the service level (src/retry/schema.ts). */
export const retrySchema = retriesSchema;

const AUTHORITY = /^[A-Za-z0-9\-._~%!$&'()*+,;=:[\]]+$/;

/**
 * `redirect` (Istio's HTTPRedirect): the mesh answers the request itself with a redirect,
 * as the sidecar does (Envoy's redirect action). Unset parts keep the request's own.
 */
export const redirectSchema = z
  .strictObject({
    /** Replaces the whole path (the query string is kept). */
    uri: z
      .string()
      .startsWith('/', 'must start with "/"')
      .regex(/^[\x21-\xff]*$/)
      .optional(),
    /** Replaces the prefix the route matched (as rewrite.uri does). */
    prefixRewrite: z
      .string()
      .regex(/^[\x21-\xff]*$/)
      .optional(),
    authority: z.string().regex(AUTHORITY, 'is not a valid authority').optional(),
    port: z.number().int().min(1).max(65535).optional(),
    derivePort: z.enum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']).optional(),
    scheme: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9+.-]*$/, 'is not a URL scheme')
      .optional(),
    /** 301 by default (Istio). */
    redirectCode: z
      .number()
      .int()
      .refine((c) => [301, 302, 303, 307, 308].includes(c), { message: 'must be 301, 302, 303, 307 or 308' })
      .optional(),
  })
  .refine((r) => r.uri === undefined || r.prefixRewrite === undefined, {
    message: 'sets uri and prefixRewrite: use only one',
  })
  .refine((r) => r.port === undefined || r.derivePort === undefined, {
    message: 'sets port and derivePort: use only one',
  });

/** The largest directResponse body (Envoy's max_direct_response_body_size_bytes allows raising it). */
export const DIRECT_RESPONSE_MAX_BODY = 100 * 1024;

/** `directResponse` (Istio's HTTPDirectResponse): the mesh answers with this status and body. */
export const directResponseSchema = z.strictObject({
  status: z.number().int().min(200).max(599),
  body: z
    .union([
      z.strictObject({ string: z.string().max(DIRECT_RESPONSE_MAX_BODY) }),
      z.strictObject({
        /** Base64, as Istio's `bytes` in YAML. */
        bytes: z.base64().max(Math.ceil((DIRECT_RESPONSE_MAX_BODY * 4) / 3) + 4),
      }),
    ])
    .optional(),
});

/** One entry of `mirrors` (Istio's HTTPMirrorPolicy). */
export const mirrorPolicySchema = z.strictObject({
  destination: destinationSchema,
  /** Share of requests copied (default 100). */
  percentage: percentage.optional(),
});

/**
 * `corsPolicy` (Istio's CorsPolicy), enforced as the client sidecar's CORS filter does: a
 * preflight from an allowed origin is answered by the mesh, other requests from an allowed
 * origin get the CORS response headers.
 */
export const corsPolicySchema = z.strictObject({
  allowOrigins: z.array(stringMatchSchema).optional(),
  allowMethods: z.array(z.string().min(1)).optional(),
  allowHeaders: z.array(z.string().min(1)).optional(),
  exposeHeaders: z.array(z.string().min(1)).optional(),
  maxAge: duration.optional(),
  allowCredentials: z.boolean().optional(),
  /** What to do with a preflight from an origin not allowed: FORWARD it (default) or IGNORE the policy. */
  unmatchedPreflights: z.enum(['UNSPECIFIED', 'FORWARD', 'IGNORE']).optional(),
});

export const httpRouteSchema = z
  .strictObject({
    name: z.string().optional(),
    match: z.array(matchSchema).optional(),
    /** Where the request goes; a route without it answers with `redirect` or `directResponse`. */
    route: routeListSchema.optional(),
    redirect: redirectSchema.optional(),
    directResponse: directResponseSchema.optional(),
    headers: headersSchema.optional(),
    rewrite: rewriteSchema.optional(),
    timeout: duration.optional(),
    retries: retrySchema.optional(),
    fault: faultSchema.optional(),
    chaos: chaosSchema.optional(),
    mirror: destinationSchema.optional(),
    mirrorPercentage: percentage.optional(),
    mirrors: z.array(mirrorPolicySchema).optional(),
    corsPolicy: corsPolicySchema.optional(),
  })
  .superRefine((r, ctx) => {
    const issue = (path: string, input: unknown, message: string) =>
      ctx.addIssue({ code: 'custom', path: [path], input, message });
    if (r.mirrorPercentage !== undefined && r.mirror === undefined) {
      issue('mirrorPercentage', r.mirrorPercentage, 'is set but mirror is not');
    }
    if (r.mirror !== undefined && r.mirrors !== undefined) {
      issue('mirrors', r.mirrors, 'cannot be set together with mirror (Istio)');
    }
    const actions = (['route', 'redirect', 'directResponse'] as const).filter((k) => r[k] !== undefined);
    if (actions.length === 0) {
      ctx.addIssue({
        code: 'custom',
        input: undefined,
        path: ['route'],
        message: 'is required (or a redirect or directResponse)',
      });
    } else if (actions.length > 1) {
      issue(
        actions[1] as string,
        r[actions[1] as 'route'],
        `cannot be set together with ${actions[0]}: use one`,
      );
    }
  });

/** Ordered: the first route that matches wins. */
export const httpRoutesSchema = z.array(httpRouteSchema).superRefine((routes, ctx) => {
  routes.forEach((r, i) => {
    if (i < routes.length - 1 && (r.match === undefined || r.match.length === 0)) {
      ctx.addIssue({
        code: 'custom',
        path: [i],
        input: undefined,
        message: `has no match, so it takes every request and the ${routes.length - 1 - i} route(s) after it can never match; move it last`,
      });
    }
  });
});

export function createSubsetSchema<P extends z.ZodType>(trafficPolicy: P) {
  return z.strictObject({
    name: z.string().min(1),
    labels: labels.optional(),
    trafficPolicy: trafficPolicy.optional(),
  });
}

export function createSubsetsSchema<P extends z.ZodType>(trafficPolicy: P) {
  return z.array(createSubsetSchema(trafficPolicy)).superRefine((subsets, ctx) => {
    const seen = new Set<string>();
    subsets.forEach((s, i) => {
      if (seen.has(s.name)) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'name'],
          input: s.name,
          message: 'is a duplicate subset name',
        });
      }
      seen.add(s.name);
    });
  });
}

/** The fields routing adds to `services.<name>`, to spread into the service schema. */
export function createRoutingFields<P extends z.ZodType>(trafficPolicy: P) {
  return {
    http: httpRoutesSchema.optional(),
    subsets: createSubsetsSchema(trafficPolicy).optional(),
  };
}

export type StringMatch = z.output<typeof stringMatchSchema>;
export type MatchBlock = z.output<typeof matchSchema>;
export type HeaderOps = z.output<typeof headerOpsSchema>;
export type HeadersConfig = z.output<typeof headersSchema>;
export type Destination = z.output<typeof destinationSchema>;
export type RouteDestination = z.output<typeof routeDestinationSchema>;
export type RewriteConfig = z.output<typeof rewriteSchema>;
export type RedirectConfig = z.output<typeof redirectSchema>;
export type DirectResponseConfig = z.output<typeof directResponseSchema>;
export type CorsPolicyConfig = z.output<typeof corsPolicySchema>;
export type MirrorPolicy = z.output<typeof mirrorPolicySchema>;
export type RetryConfig = z.output<typeof retrySchema>;
export type HttpRoute = z.output<typeof httpRouteSchema>;
export interface Subset {
  name: string;
  labels?: Record<string, string> | undefined;
  trafficPolicy?: unknown;
}

/** A custom issue with a path from the config root, ready for ctx.addIssue. */
export interface RoutingIssue {
  code: 'custom';
  path: (string | number)[];
  message: string;
  input?: unknown;
}

interface ServiceRouting {
  http?: readonly HttpRoute[] | undefined;
  subsets?: readonly { name: string }[] | undefined;
}

/**
 * Checks references across services: a destination or mirror `host` must be a configured service
 * (unless `allowUnknownHosts`, for `unknownServices: "passthrough"`), and a `subset` must exist
 * in that service's subsets. Paths start at the config root (`services.x.http[0]...`).
 */
export function routeReferenceIssues(
  services: Readonly<Record<string, ServiceRouting>>,
  allowUnknownHosts = false,
): RoutingIssue[] {
  const issues: RoutingIssue[] = [];
  const check = (owner: string, dest: Destination, path: (string | number)[]) => {
    const host = dest.host ?? owner;
    const target = Object.hasOwn(services, host) ? services[host] : undefined;
    if (target === undefined) {
      if (!allowUnknownHosts) {
        issues.push({
          code: 'custom',
          path: [...path, 'host'],
          input: host,
          message: `is not a configured service (known: ${Object.keys(services).join(', ') || 'none'})`,
        });
      } else if (dest.subset !== undefined) {
        issues.push({
          code: 'custom',
          path: [...path, 'subset'],
          input: dest.subset,
          message: `cannot be used: host ${JSON.stringify(host)} is not a configured service`,
        });
      }
      return;
    }
    if (dest.subset !== undefined && !target.subsets?.some((s) => s.name === dest.subset)) {
      const names = target.subsets?.map((s) => s.name) ?? [];
      issues.push({
        code: 'custom',
        path: [...path, 'subset'],
        input: dest.subset,
        message: `is not a subset of service "${host}" (subsets: ${names.join(', ') || 'none'})`,
      });
    }
  };
  for (const [name, svc] of Object.entries(services)) {
    svc.http?.forEach((route, i) => {
      const base = ['services', name, 'http', i];
      route.route?.forEach((d, j) => {
        check(name, d.destination, [...base, 'route', j, 'destination']);
      });
      if (route.mirror) check(name, route.mirror, [...base, 'mirror']);
      route.mirrors?.forEach((m, j) => {
        check(name, m.destination, [...base, 'mirrors', j, 'destination']);
      });
    });
  }
  return issues;
}

/**
 * `match.sourceLabels` compares with this workload's labels (the mesh's `labels`): without them
 * the condition cannot be decided, so it is refused rather than guessed.
 */
export function sourceLabelIssues(services: Readonly<Record<string, ServiceRouting>>): RoutingIssue[] {
  const issues: RoutingIssue[] = [];
  for (const [name, svc] of Object.entries(services)) {
    svc.http?.forEach((route, i) => {
      route.match?.forEach((m, j) => {
        if (m.sourceLabels === undefined) return;
        issues.push({
          code: 'custom',
          path: ['services', name, 'http', i, 'match', j, 'sourceLabels'],
          input: m.sourceLabels,
          message:
            "needs this workload's own labels: set the mesh's `labels` (e.g. { app: 'reviews', version: 'v2' })",
        });
      });
    });
  }
  return issues;
}
