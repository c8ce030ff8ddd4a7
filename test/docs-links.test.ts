// The documentation as it ships in the npm package: every relative link in README.md and docs/
// points at a file that is in the package (`files`), every anchor at a heading that exists, and
// no page speaks of the project's own issue numbers.
import { readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { anchors, codeBlocks, links, slugify } from './support/markdown.ts';
import { packagedDocs, packagedFiles, ROOT } from './support/package-files.ts';

const files = packagedFiles();
const docs = packagedDocs();
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');

describe('the docs in the package', () => {
  it('are there: README.md and docs/', () => {
    expect(docs).toContain('README.md');
    expect(docs).toContain('docs/README.md');
    expect(docs.length).toBeGreaterThan(10);
  });

  it('link only to files in the package, and to anchors that exist', () => {
    const broken: string[] = [];
    for (const doc of docs) {
      for (const { line, target } of links(read(doc))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:...
        const [path = '', anchor] = target.split('#', 2) as [string, string | undefined];
        const file = path ? posix.normalize(posix.join(posix.dirname(doc), decodeURIComponent(path))) : doc;
        const where = `${doc}:${line}: ${target}`;
        if (!files.includes(file)) {
          broken.push(`${where} -> ${file} is not in the package`);
          continue;
        }
        if (anchor !== undefined && file.endsWith('.md') && !anchors(read(file)).has(anchor))
          broken.push(`${where} -> no heading "#${anchor}" in ${file}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('speak of no issue numbers of the project (upstream references like istio/istio#1 are fine)', () => {
    const found: string[] = [];
    for (const doc of docs) {
      const md = read(doc);
      const code = new Set<number>();
      for (const b of codeBlocks(md))
        for (let l = b.line; l <= b.line + b.code.split('\n').length + 1; l++) code.add(l);
      md.split('\n').forEach((text, i) => {
        if (code.has(i + 1)) return;
        const plain = text.replace(/`+[^`]*`+/g, '').replace(/\]\([^)]*\)/g, ']');
        const m = /\bissues? #?\d+\b|(?<![\w/.-])#\d+\b/i.exec(plain);
        if (m) found.push(`${doc}:${i + 1}: "${m[0]}"`);
      });
    }
    expect(found).toEqual([]);
  });
});

describe('the markdown helpers', () => {
  it('make GitHub anchors', () => {
    expect(slugify('`fromIstio(yaml, options)`')).toBe('fromistioyaml-options');
    expect(slugify('The demo: `npm run demo`')).toBe('the-demo-npm-run-demo');
    expect(slugify('Fault injection and chaos')).toBe('fault-injection-and-chaos');
    expect([...anchors('# A\n## A\n```\n# not a heading\n```\n')]).toEqual(['a', 'a-1']);
  });

  it('find links outside code, and code blocks with their tags', () => {
    const md = 'see [a](a.md#x) and `[b](b.md)`\n```ts no-run\n[c](c.md)\n```\n';
    expect(links(md)).toEqual([{ line: 1, target: 'a.md#x' }]);
    expect(codeBlocks(md)).toEqual([{ line: 2, lang: 'ts', tags: ['no-run'], code: '[c](c.md)' }]);
    expect(dirname('docs/x.md')).toBe('docs');
  });
});
