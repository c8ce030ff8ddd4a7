import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { hasPropagator } from '../context/otel.ts';
import { otelHas } from './otel-global.ts';

afterEach(() => {
  propagation.disable();
  trace.disable();
  vi.restoreAllMocks();
});

describe('otelHas', () => {
  it('follows what is registered with the OpenTelemetry API', () => {
    expect(otelHas('propagation')).toBe(false);
    expect(otelHas('trace')).toBe(false);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    expect(otelHas('propagation')).toBe(true);
    trace.setGlobalTracerProvider(new BasicTracerProvider());
    expect(otelHas('trace')).toBe(true);
    propagation.disable();
    expect(otelHas('propagation')).toBe(false);
  });
});

describe('hasPropagator', () => {
  it('with nothing registered, answers without asking the API (no array per request)', () => {
    const fields = vi.spyOn(propagation, 'fields');
    expect(hasPropagator()).toBe(false);
    expect(fields).not.toHaveBeenCalled();
  });

  it('with a registered propagator, is true when it propagates fields', () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    expect(hasPropagator()).toBe(true);
  });
});
