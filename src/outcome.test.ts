import { describe, expect, it } from 'vitest';
import { RecordingController, recorder } from '../test/support/layers.ts';
import { MeshAbortedError, MeshTimeoutError, OverflowError } from './errors.ts';
import { classify, DISCARDED, type ErrorKind, isFailure, type Outcome, OutcomeHandler } from './outcome.ts';
import type { DispatchHandler } from './pipeline.ts';

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('classify', () => {
  const table: [string, unknown, ErrorKind][] = [
    ['the discarded hedge, by identity', DISCARDED, 'cancelled'],
    ['an error merely named Discarded', Object.assign(new Error('x'), { name: 'Discarded' }), 'other'],
    ["the caller's abort", new MeshAbortedError('svc'), 'cancelled'],
    ['an AbortError', Object.assign(new Error('aborted'), { name: 'AbortError' }), 'cancelled'],
    ["undici's abort", coded('UND_ERR_ABORTED'), 'cancelled'],
    ['a per-try timeout', new MeshTimeoutError('svc', 50, 'per-try'), 'timeout'],
    ['a refused connection', coded('ECONNREFUSED'), 'connect'],
    ['a connect timeout', coded('UND_ERR_CONNECT_TIMEOUT'), 'connect'],
    ['a reset socket', coded('ECONNRESET'), 'reset'],
    ["undici's socket error", coded('UND_ERR_SOCKET'), 'reset'],
    ['a truncated body', coded('UND_ERR_RES_CONTENT_LENGTH_MISMATCH'), 'reset'],
    ["llhttp's error code", coded('HPE_INVALID_CONSTANT'), 'reset'],
    ["undici's parser error", Object.assign(new Error('bad'), { name: 'HTTPParserError' }), 'reset'],
    ['a code in the cause', new Error('fetch failed', { cause: coded('ECONNREFUSED') }), 'connect'],
    [
      'REFUSED_STREAM',
      coded('ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_REFUSED_STREAM'),
      'refused-stream',
    ],
    ['another HTTP/2 stream error', coded('ERR_HTTP2_STREAM_ERROR', 'NGHTTP2_INTERNAL_ERROR'), 'other'],
    ['a mesh overflow', new OverflowError('svc', 'x', 1), 'other'],
    ['an unknown error', new Error('?'), 'other'],
    ['not an error at all', 'boom', 'other'],
    ['null', null, 'other'],
  ];
  it.each(table.map(([name, err, kind]) => [name, kind, err] as const))('%s → %s', (_name, kind, err) => {
    expect(classify(err)).toBe(kind);
  });
});

describe('isFailure', () => {
  const o = (status: number, error?: ErrorKind): Outcome => ({ status, error, cause: undefined });
  it('counts 5xx answers and errors that were not cancellations', () => {
    expect(isFailure(o(200))).toBe(false);
    expect(isFailure(o(404))).toBe(false);
    expect(isFailure(o(503))).toBe(true);
    expect(isFailure(o(0, 'reset'))).toBe(true);
    expect(isFailure(o(200, 'reset'))).toBe(true);
    expect(isFailure(o(0, 'timeout'))).toBe(true);
    expect(isFailure(o(0, 'cancelled'))).toBe(false);
    expect(isFailure(o(503, 'cancelled'))).toBe(true);
  });
});

class Probe extends OutcomeHandler {
  readonly events: string[];
  constructor(handler: DispatchHandler, events: string[]) {
    super(handler);
    this.events = events;
  }
  protected override onHeaders(status: number): void {
    this.events.push(`headers ${status}`);
  }
  protected override onDone(o: Outcome): void {
    this.events.push(`done ${o.status} ${o.error ?? 'clean'}`);
  }
}

describe('OutcomeHandler', () => {
  it('fires onHeaders and onDone once each, before forwarding', () => {
    const events: string[] = [];
    const r = recorder();
    const inner = {
      ...r,
      onResponseStart: (...a: Parameters<NonNullable<DispatchHandler['onResponseStart']>>) => {
        events.push('forwarded headers');
        r.onResponseStart(...a);
      },
      onResponseEnd: () => events.push('forwarded end'),
    };
    const h = new Probe(inner, events);
    const c = new RecordingController();
    h.onRequestStart(c, {});
    h.onResponseStart(c, 200, {}, '');
    h.onResponseEnd(c, {});
    h.onResponseEnd(c, {});
    h.onResponseError(c, new Error('late'));
    expect(events).toEqual(['headers 200', 'forwarded headers', 'done 200 clean', 'forwarded end']);
  });

  it('a body that breaks after the headers ends with the status and the error kind', () => {
    const events: string[] = [];
    const h = new Probe(recorder(), events);
    const c = new RecordingController();
    h.onResponseStart(c, 200, {}, '');
    h.onResponseError(c, coded('UND_ERR_SOCKET'));
    expect(events).toEqual(['headers 200', 'done 200 reset']);
  });

  it('an error before the headers has status 0; an upgrade is clean', () => {
    const a: string[] = [];
    new Probe(recorder(), a).onResponseError(new RecordingController(), DISCARDED);
    expect(a).toEqual(['done 0 cancelled']);
    const b: string[] = [];
    const up = new Probe(recorder(), b);
    up.onRequestUpgrade(new RecordingController(), 101, {}, undefined as never);
    expect(b).toEqual(['headers 101', 'done 101 clean']);
  });
});
