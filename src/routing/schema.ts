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
  method: stringMatchSchema.optional(),
  headers: userRecord(headerName, stringMatchSchema).optional(),
  withoutHeaders: userRecord(headerName, stringMatchSchema).optional(),
  queryParams: userRecord(z.string().min(1), stringMatchSchema).optional(),
  ignoreUriCase: z.boolean().optional(),
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
  weight: z.number().int().min(0).max(100).optional(),
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
    if (sum !== 100) {
      const missing = list.length - given.length;
      ctx.addIssue({
        code: 'custom',
        input: undefined,
        message:
          `weights sum to ${sum}, not 100` +
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
  })
  .refine((r) => r.uri !== undefined || r.authority !== undefined, { message: 'needs uri or authority' });

/** `retries` on a route: the same schema as the service level (src/retry/schema.ts). */
export const retrySchema = retriesSchema;

export const httpRouteSchema = z
  .strictObject({
    name: z.string().optional(),
    match: z.array(matchSchema).optional(),
    route: routeListSchema,
    headers: headersSchema.optional(),
    rewrite: rewriteSchema.optional(),
    timeout: duration.optional(),
    retries: retrySchema.optional(),
    fault: faultSchema.optional(),
    chaos: chaosSchema.optional(),
    mirror: destinationSchema.optional(),
    mirrorPercentage: percentage.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.mirrorPercentage !== undefined && r.mirror === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['mirrorPercentage'],
        input: r.mirrorPercentage,
        message: 'is set but mirror is not',
      });
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
      route.route.forEach((d, j) => {
        check(name, d.destination, [...base, 'route', j, 'destination']);
      });
      if (route.mirror) check(name, route.mirror, [...base, 'mirror']);
    });
  }
  return issues;
}
