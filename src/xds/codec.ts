/**
 * Envoy v3 messages in and out: the descriptor compiled at build time (src/xds/proto/envoy-v3.json,
 * see scripts/build-xds-protos.mjs) read with protobufjs, an optional peer dependency loaded
 * here, when `xds` is configured. Field names are the .proto ones (snake_case), enums are
 * strings, 64-bit integers numbers, unset fields absent.
 */
import { readFileSync } from 'node:fs';
import { loadOptional } from '../optional.ts';

/** The parts of protobufjs used here. */
interface PbType {
  decode(buf: Uint8Array): unknown;
  encode(msg: unknown): { finish(): Uint8Array };
  fromObject(obj: unknown): unknown;
  toObject(msg: unknown, opts: object): Record<string, unknown>;
}
interface PbRoot {
  lookupType(name: string): PbType;
}
interface Protobufjs {
  Root: { fromJSON(json: unknown): PbRoot };
}

export interface AnyMessage {
  type_url?: string;
  value?: Uint8Array;
}

const TO_OBJECT = { enums: String, longs: Number, defaults: false, arrays: false, oneofs: true };

/** Where the descriptor is: beside this module in src/, under xds/ beside the bundle in dist/. */
const CANDIDATES = ['./proto/envoy-v3.json', './xds/envoy-v3.json'];

export class Codec {
  readonly #root: PbRoot;
  readonly #types = new Map<string, PbType>();

  constructor() {
    const pb = loadOptional<Protobufjs>('protobufjs', 'xds (the xDS client)');
    let json: unknown;
    let lastErr: unknown;
    for (const rel of CANDIDATES) {
      try {
        json = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
        break;
      } catch (err) {
        lastErr = err;
      }
    }
    if (json === undefined)
      throw new Error(`meshwork: the Envoy API descriptor is missing from the package (${String(lastErr)})`);
    this.#root = pb.Root.fromJSON(json);
  }

  type(name: string): PbType {
    let t = this.#types.get(name);
    if (!t) {
      t = this.#root.lookupType(name);
      this.#types.set(name, t);
    }
    return t;
  }

  decode(name: string, buf: Uint8Array): Record<string, unknown> {
    const t = this.type(name);
    return t.toObject(t.decode(buf), TO_OBJECT);
  }

  encode(name: string, obj: object): Uint8Array {
    const t = this.type(name);
    return t.encode(t.fromObject(obj)).finish();
  }

  /** Decodes an Any holding `name`s; undefined when it holds something else. */
  unpack(any: AnyMessage | undefined, name: string): Record<string, unknown> | undefined {
    if (!any || typeUrlName(any.type_url) !== name) return undefined;
    return this.decode(name, any.value ?? new Uint8Array());
  }
}

/** `type.googleapis.com/envoy.config.listener.v3.Listener` → `envoy.config.listener.v3.Listener`. */
export function typeUrlName(url: string | undefined): string {
  if (!url) return '';
  const slash = url.lastIndexOf('/');
  return slash === -1 ? url : url.slice(slash + 1);
}

/** google.protobuf.Struct from JSON (node metadata). */
export function toStruct(json: Record<string, unknown>): object {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) fields[k] = toValue(v);
  return { fields };
}

function toValue(v: unknown): object {
  if (v === null || v === undefined) return { null_value: 'NULL_VALUE' };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map(toValue) } };
  if (typeof v === 'object') return { struct_value: toStruct(v as Record<string, unknown>) };
  return { string_value: String(v) };
}
