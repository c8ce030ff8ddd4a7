import { describe, expect, it } from 'vitest';
import { parseHostPort } from './address.ts';
import { parseDuration } from './duration.ts';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['2s', 2000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['0.5s', 500],
    ['1m30s', 90_000],
    ['100us', 0.1],
    [1500, 1500],
    ['1500', 1500],
    [0, 0],
  ])('%s -> %s ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([
    '',
    'fast',
    '5 s',
    '-1s',
    '1d',
    's',
    '1s2',
    NaN,
    -5,
    null,
    {},
    Infinity,
    '9'.repeat(400),
    `${'9'.repeat(400)}h`,
  ])('%s is refused', (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });
});

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    ['travels-v1.internal:80', { host: 'travels-v1.internal', port: 80 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
  ])('%s', (input, expected) => {
    expect(parseHostPort(input)).toEqual(expected);
  });

  it.each([
    '127.0.0.1',
    '127.0.0.1:0',
    '127.0.0.1:70000',
    ':80',
    'a b:80',
    '::1:80',
    '[::1]80',
    '300.1.1.1:80',
    'x:y',
  ])('%s is refused', (input) => {
    expect(parseHostPort(input)).toBeUndefined();
  });
});
