/** Reading the YAML input: documents, `kind: List` items, and the input that is never valid. */
import { parseAllDocuments } from 'yaml';
import { PROTO_KEY_MESSAGE, protoKeyPaths } from '../config/reserved.ts';
import { MeshworkConfigError } from '../errors.ts';
import { isObject, show } from './walk.ts';

export interface Doc {
  value: Record<string, unknown>;
  where: string;
}

/** `spec.subsets[0].labels`, as the conversion writes paths. */
function joinPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out;
}

/**
 * Every document of the input (one string with `---` separators, or several strings), `kind: List`
 * items spread out. YAML that does not parse, a `__proto__` key anywhere, or a document that is
 * not a mapping is a MeshworkConfigError naming the document.
 */
export function parseDocs(input: string | readonly string[]): Doc[] {
  const texts = typeof input === 'string' ? [input] : input;
  const docs: Doc[] = [];
  texts.forEach((text, t) => {
    const file = typeof input === 'string' ? '' : `yaml[${t}] `;
    parseAllDocuments(text).forEach((d, i) => {
      const where = `${file}document ${i + 1}`;
      if (d.errors.length > 0) {
        throw new MeshworkConfigError([
          { path: `fromIstio ${where}`, message: `is not valid YAML (${d.errors[0]?.message})` },
        ]);
      }
      let value: unknown;
      try {
        value = d.toJS();
      } catch (err) {
        // An alias to a missing anchor, or an alias bomb (yaml's maxAliasCount).
        throw new MeshworkConfigError([
          { path: `fromIstio ${where}`, message: `is not valid YAML (${(err as Error).message})` },
        ]);
      }
      if (value === null || value === undefined) return;
      const reserved = protoKeyPaths(value);
      if (reserved.length > 0) {
        throw new MeshworkConfigError(
          reserved.map((p) => ({ path: `fromIstio ${where} ${joinPath(p)}`, message: PROTO_KEY_MESSAGE })),
        );
      }
      if (!isObject(value)) {
        throw new MeshworkConfigError([
          { path: `fromIstio ${where}`, message: `is not a mapping (got ${show(value)})` },
        ]);
      }
      if (typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
        value.items.forEach((item, j) => {
          if (isObject(item)) docs.push({ value: item, where: `${where} items[${j}]` });
        });
      } else {
        docs.push({ value, where });
      }
    });
  });
  return docs;
}
