import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { trafficPolicySchema } from '../config/schema.ts';
import { createRoutingFields, httpRoutesSchema, routeReferenceIssues } from './schema.ts';

const service = z.strictObject({ ...createRoutingFields(trafficPolicySchema) });

/** Issues as the config loader prints them: dotted path, then the message. */
function problems(input: unknown): string[] {
  const r = service.safeParse(input, { reportInput: true });
  if (r.success) return [];
  return r.error.issues.map((i) => {
    const path = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    const input = (i as { input?: unknown }).input;
    return `${path.replace(/^\./, '')}: ${input === undefined ? '' : `${JSON.stringify(input)} `}${i.message}`;
  });
}

const dest = (subset: string, weight?: number) => ({
  destination: { host: 'reviews', subset },
  ...(weight === undefined ? {} : { weight }),
});

describe('routing schema', () => {
  it('accepts a full route', () => {
    const parsed = service.parse({
      http: [
        {
          name: 'jason',
          match: [
            {
              uri: { prefix: '/api' },
              method: { exact: 'GET' },
              headers: { 'end-user': { exact: 'jason' }, 'x-present': {} },
              withoutHeaders: { 'x-canary': { exact: 'off' } },
              queryParams: { v: { regex: '[0-9]+' } },
              ignoreUriCase: true,
            },
          ],
          route: [dest('v2', 90), { ...dest('v3', 10), headers: { request: { set: { 'x-v': '3' } } } }],
          headers: {
            request: { set: { a: '1' }, add: { b: '2' }, remove: ['c'] },
            response: { remove: ['server'] },
          },
          rewrite: { uri: '/v2/api', authority: 'reviews.internal' },
          timeout: '2s',
          retries: {
            attempts: 3,
            perTryTimeout: '500ms',
            retryOn: ['5xx', 'reset'],
            hedge: { delay: '50ms' },
          },
          fault: { delay: { fixedDelay: '7s', percentage: { value: 100 } } },
          chaos: { reset: { percentage: { value: 1 } } },
          mirror: { host: 'reviews', subset: 'v3' },
          mirrorPercentage: { value: 50 },
        },
        { route: [dest('v1')] },
      ],
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'PEAK_EWMA' } } },
      ],
    });
    expect(parsed.http?.[0]?.timeout).toBe(2000);
    expect(parsed.http?.[0]?.retries?.perTryTimeout).toBe(500);
  });

  it('refuses weights that do not sum to 100, naming the route list', () => {
    expect(problems({ http: [{ route: [dest('v1', 50), dest('v2', 40)] }] })).toEqual([
      'http[0].route: weights sum to 90, not 100',
    ]);
    expect(problems({ http: [{ route: [dest('v1', 50), dest('v2')] }] })).toEqual([
      'http[0].route: weights sum to 50, not 100 (1 destination(s) without weight count as 0)',
    ]);
    // a mix that sums right, an even split, and a lone destination are fine
    expect(problems({ http: [{ route: [dest('v1', 100), dest('v2')] }] })).toEqual([]);
    expect(problems({ http: [{ route: [dest('v1'), dest('v2'), dest('v3')] }] })).toEqual([]);
    expect(problems({ http: [{ route: [dest('v1')] }] })).toEqual([]);
  });

  it('names the bad value: regex, status, percentage, duration, match kind', () => {
    const bad = problems({
      http: [
        {
          match: [{ uri: { regex: '(?<=x)y' } }, { headers: { h: { exact: 'a', prefix: 'b' } } }],
          route: [dest('v1')],
          fault: { abort: { httpStatus: 700, percentage: { value: 150 } } },
          timeout: 'soon',
        },
      ],
    });
    expect(bad).toContain(
      'http[0].match[0].uri.regex: "(?<=x)y" is not a usable regex: lookbehind is not supported (RE2 has none)',
    );
    expect(bad.some((l) => l.startsWith('http[0].match[1].headers.h: ') && l.includes('use only one'))).toBe(
      true,
    );
    expect(bad.some((l) => l.startsWith('http[0].fault.abort.httpStatus: 700'))).toBe(true);
    expect(bad.some((l) => l.startsWith('http[0].fault.abort.percentage.value: 150'))).toBe(true);
    expect(bad.some((l) => l.startsWith('http[0].timeout: "soon" is not a duration'))).toBe(true);
  });

  it('refuses unknown fields, a catch-all route before others, mirrorPercentage alone, duplicate subsets', () => {
    expect(problems({ http: [{ route: [dest('v1')], websocketUpgrade: true }] })[0]).toMatch(/^http\[0\]: /);
    expect(problems({ http: [{ route: [dest('v1')] }, { route: [dest('v2')] }] })).toEqual([
      'http[0]: has no match, so it takes every request and the 1 route(s) after it can never match; move it last',
    ]);
    expect(problems({ http: [{ route: [dest('v1')], mirrorPercentage: { value: 5 } }] })[0]).toMatch(
      /^http\[0\]\.mirrorPercentage: .*is set but mirror is not/,
    );
    expect(problems({ subsets: [{ name: 'v1' }, { name: 'v1' }] })).toEqual([
      'subsets[1].name: "v1" is a duplicate subset name',
    ]);
  });

  it('a route forwards, redirects or answers directly: exactly one of route, redirect, directResponse', () => {
    expect(problems({ http: [{ redirect: { uri: '/x' } }] })).toEqual([]);
    expect(problems({ http: [{ directResponse: { status: 503, body: { string: 'down' } } }] })).toEqual([]);
    expect(problems({ http: [{ name: 'nothing' }] })).toEqual([
      'http[0].route: is required (or a redirect or directResponse)',
    ]);
    expect(problems({ http: [{ route: [dest('v1')], redirect: { uri: '/x' } }] })[0]).toMatch(
      /^http\[0\]\.redirect: .*cannot be set together with route/,
    );
    expect(problems({ http: [{ redirect: { uri: '/x', redirectCode: 200 } }] })[0]).toMatch(
      /redirectCode: 200 must be 301, 302, 303, 307 or 308/,
    );
    expect(problems({ http: [{ directResponse: { status: 700 } }] })[0]).toMatch(
      /^http\[0\]\.directResponse\.status/,
    );
  });

  it('weights may be fractions that sum to 100 (fromIstio scales relative weights); mirror and mirrors exclude each other', () => {
    expect(problems({ http: [{ route: [dest('v1', 100 / 3), dest('v2', 200 / 3)] }] })).toEqual([]);
    expect(problems({ http: [{ route: [dest('v1', 33.3), dest('v2', 66.6)] }] })[0]).toMatch(
      /weights sum to 99\.9/,
    );
    expect(
      problems({
        http: [
          { route: [dest('v1')], mirror: { subset: 'v2' }, mirrors: [{ destination: { subset: 'v2' } }] },
        ],
      })[0],
    ).toMatch(/^http\[0\]\.mirrors: .*cannot be set together with mirror/);
  });

  it("validates a subset's trafficPolicy with the service trafficPolicy schema", () => {
    const bad = problems({
      subsets: [{ name: 'v1', trafficPolicy: { loadBalancer: { simple: 'BOGUS' } } }],
    });
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatch(/^subsets\[0\]\.trafficPolicy\.loadBalancer\.simple: "BOGUS" /);
  });

  it('checks references across services: hosts and subsets', () => {
    const http = httpRoutesSchema.parse([
      {
        route: [
          { destination: { subset: 'v9' }, weight: 50 },
          { destination: { host: 'ratings', subset: 'v1' }, weight: 50 },
        ],
        mirror: { host: 'nowhere' },
      },
    ]);
    const issues = routeReferenceIssues({
      reviews: { http, subsets: [{ name: 'v1' }] },
      ratings: { subsets: [{ name: 'v1' }] },
    });
    expect(issues.map((i) => [i.path.join('.'), i.input])).toEqual([
      ['services.reviews.http.0.route.0.destination.subset', 'v9'],
      ['services.reviews.http.0.mirror.host', 'nowhere'],
    ]);
    expect(
      routeReferenceIssues({ reviews: { http, subsets: [{ name: 'v9' }] }, ratings: {} }, true),
    ).toHaveLength(1);
  });
});
