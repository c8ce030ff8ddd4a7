import { describe, expect, it } from 'vitest';
import { compileMappingRules } from './mapping.ts';
import { mappingRuleSchema } from './schema.ts';

const rules = (list: unknown[]) => compileMappingRules(list.map((r) => mappingRuleSchema.parse(r)));

describe('3scale mapping rules', () => {
  it('match as a prefix, `$` for the exact path, `{}` for one segment', () => {
    const r = rules([
      { pattern: '/v1', metric: 'hits' },
      { method: 'GET', pattern: '/v1/trips/{id}$', metric: 'trip', delta: 2 },
      { method: 'post', pattern: '/v1/bookings', metric: 'booking', delta: 5 },
    ]);
    expect(r.usage('GET', '/v1/trips/42')).toEqual([
      { metric: 'hits', delta: 1 },
      { metric: 'trip', delta: 2 },
    ]);
    expect(r.usage('GET', '/v1/trips/42/reviews')).toEqual([{ metric: 'hits', delta: 1 }]);
    expect(r.usage('POST', '/v1/bookings/7')).toEqual([
      { metric: 'hits', delta: 1 },
      { metric: 'booking', delta: 5 },
    ]);
    expect(r.usage('GET', '/v2/trips')).toBeUndefined();
    // APIcast compares as a plain prefix: /v1 matches /v1x too.
    expect(r.usage('GET', '/v1x')).toEqual([{ metric: 'hits', delta: 1 }]);
  });

  it('a placeholder never spans a slash; literal characters are not regex', () => {
    const r = rules([{ pattern: '/a.b/{x}.json$', metric: 'm' }]);
    expect(r.usage('GET', '/a.b/42.json')).toEqual([{ metric: 'm', delta: 1 }]);
    expect(r.usage('GET', '/aXb/42.json')).toBeUndefined();
    expect(r.usage('GET', '/a.b/4/2.json')).toBeUndefined();
  });

  it('query parameters in the pattern: present, or with a value', () => {
    const r = rules([
      { pattern: '/search?q={q}', metric: 'search' },
      { pattern: '/search?mode=deep&q={q}', metric: 'deep', delta: 10 },
    ]);
    expect(r.usage('GET', '/search?q=ams')).toEqual([{ metric: 'search', delta: 1 }]);
    expect(r.usage('GET', '/search?mode=deep&q=ams')).toEqual([
      { metric: 'search', delta: 1 },
      { metric: 'deep', delta: 10 },
    ]);
    expect(r.usage('GET', '/search')).toBeUndefined();
  });

  it('deltas of one metric add up; `last` stops', () => {
    const r = rules([
      { pattern: '/', metric: 'hits' },
      { pattern: '/big', metric: 'hits', delta: 4, last: true },
      { pattern: '/big', metric: 'never' },
    ]);
    expect(r.usage('GET', '/big')).toEqual([{ metric: 'hits', delta: 5 }]);
  });
});
