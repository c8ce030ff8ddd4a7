/**
 * The field tables fromIstio reads Istio with must not drift from the zod schemas createMesh
 * validates with: every field fromIstio copies under its own name must exist in the schema, every
 * schema field must be one fromIstio reads or a meshwork extension listed below, and no field the
 * schema supports may be refused by fromIstio.
 */
import { expect, describe as group, it } from 'vitest';
import type { z } from 'zod';
import * as zodModule from 'zod';
import { serviceFields } from '../config/schema.ts';
import { destinationRuleSpec } from './destination-rule.ts';
import { extensionPath, MESHWORK_EXTENSIONS, PER_SERVICE_ONLY } from './extensions.ts';
import { virtualServiceSpec } from './virtual-service.ts';
import * as walk from './walk.ts';
import { describe, type Handler } from './walk.ts';

type Zod = z.ZodType;
interface Def {
  type: string;
  shape?: Record<string, Zod>;
  innerType?: Zod;
  in?: Zod;
  element?: Zod;
  valueType?: Zod;
  options?: Zod[];
}
const def = (s: Zod): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Optional, default, transform (pipe) and nullable wrappers removed. */
function unwrap(s: Zod): Zod {
  let cur = s;
  for (;;) {
    const d = def(cur);
    if (d.type === 'optional' || d.type === 'default' || d.type === 'nullable' || d.type === 'prefault')
      cur = d.innerType as Zod;
    else if (d.type === 'pipe') cur = d.in as Zod;
    else return cur;
  }
}

function field(h: Handler, name: string): Handler {
  const shape = describe(h);
  if (shape.kind !== 'object') throw new Error(`not an object table: ${name}`);
  return shape.fields[name] as Handler;
}

/** Every drift found, as `path: what`. */
function drift(h: Handler, schema: Zod, path: string, out: string[]): string[] {
  const shape = describe(h);
  const s = unwrap(schema);
  const d = def(s);
  switch (shape.kind) {
    case 'custom':
      if (shape.inner) drift(shape.inner, schema, path, out);
      return out;
    case 'list':
      if (d.type !== 'array') out.push(`${path}: fromIstio reads a list, the schema has ${d.type}`);
      else drift(shape.item, d.element as Zod, `${path}[]`, out);
      return out;
    case 'record':
      if (d.type !== 'record') out.push(`${path}: fromIstio reads a map, the schema has ${d.type}`);
      else drift(shape.item, d.valueType as Zod, `${path}.*`, out);
      return out;
    case 'value':
      if (d.type === 'object' || d.type === 'array' || d.type === 'record')
        out.push(`${path}: fromIstio reads a scalar, the schema has ${d.type}`);
      return out;
    case 'object': {
      // A union of objects (one of several shapes, such as directResponse.body) has their fields.
      const members = d.type === 'union' ? (d.options ?? []).map((o) => def(unwrap(o))) : [d];
      if (members.length === 0 || members.some((m) => m.type !== 'object')) {
        out.push(`${path}: fromIstio reads a mapping, the schema has ${d.type}`);
        return out;
      }
      const zodFields: Record<string, Zod> = Object.assign({}, ...members.map((m) => m.shape));
      for (const [name, fh] of Object.entries(shape.fields)) {
        const p = path ? `${path}.${name}` : name;
        if (MESHWORK_EXTENSIONS.has(extensionPath(p)))
          out.push(`${p}: fromIstio reads it, yet it is listed as a meshwork extension`);
        const fs = describe(fh);
        if (shape.translated.has(name) || (fs.kind === 'custom' && fs.ignored)) continue;
        if (!Object.hasOwn(zodFields, name)) {
          out.push(`${p}: fromIstio copies it, the schema does not have it`);
          continue;
        }
        drift(fh, zodFields[name] as Zod, p, out);
      }
      for (const name of Object.keys(zodFields)) {
        const p = path ? `${path}.${name}` : name;
        if (Object.hasOwn(shape.refused, name)) {
          if (!PER_SERVICE_ONLY.test(p))
            out.push(`${p}: the schema supports it, fromIstio refuses it (${shape.refused[name]})`);
        } else if (!Object.hasOwn(shape.fields, name) && !MESHWORK_EXTENSIONS.has(extensionPath(p)))
          out.push(
            `${p}: the schema has it, fromIstio neither reads it nor lists it as a meshwork extension`,
          );
      }
      return out;
    }
  }
}

const service = serviceFields.shape;

group('fromIstio field tables against the config schemas', () => {
  it('VirtualService http routes match services.<name>.http', () => {
    expect(drift(field(virtualServiceSpec, 'http'), service.http, 'http', [])).toEqual([]);
  });

  it('DestinationRule trafficPolicy and subsets match services.<name>.trafficPolicy and .subsets', () => {
    expect(
      drift(field(destinationRuleSpec, 'trafficPolicy'), service.trafficPolicy, 'trafficPolicy', []),
    ).toEqual([]);
    expect(drift(field(destinationRuleSpec, 'subsets'), service.subsets, 'subsets', [])).toEqual([]);
  });

  it('every listed meshwork extension still exists in the schema', () => {
    const found = new Set<string>();
    const visit = (s: Zod, path: string) => {
      const d = def(unwrap(s));
      if (d.type === 'array') return visit(d.element as Zod, `${path}[]`);
      if (d.type === 'record') return visit(d.valueType as Zod, `${path}.*`);
      if (d.type !== 'object') return;
      for (const [k, v] of Object.entries(d.shape as Record<string, Zod>)) {
        const p = path ? `${path}.${k}` : k;
        found.add(p);
        visit(v, p);
      }
    };
    visit(service.http, 'http');
    visit(service.trafficPolicy, 'trafficPolicy');
    visit(service.subsets, 'subsets');
    expect([...MESHWORK_EXTENSIONS].filter((p) => !found.has(p))).toEqual([]);
  });

  it('catches drift: a schema field fromIstio refuses, one it copies that the schema lacks', () => {
    // A deliberately drifted pair, so the check above is known to bite.
    const { obj, scalar } = walk;
    const { z: zod } = zodModule;
    const h = obj({ a: scalar, b: scalar }, { c: 'refused' });
    const s = zod.strictObject({ a: zod.string(), c: zod.string(), d: zod.string() });
    expect(drift(h, s, 'x', [])).toEqual([
      'x.b: fromIstio copies it, the schema does not have it',
      'x.c: the schema supports it, fromIstio refuses it (refused)',
      'x.d: the schema has it, fromIstio neither reads it nor lists it as a meshwork extension',
    ]);
  });
});
