/**
 * Just enough Markdown for the docs tests: fenced code blocks (with their info string and line),
 * links outside code, and the anchors GitHub (and npm) generate for headings.
 */

export interface CodeBlock {
  /** 1-based line of the opening fence. */
  line: number;
  /** The first word of the info string (`ts`, `yaml`...). */
  lang: string;
  /** The other words of the info string (`no-run`...). */
  tags: string[];
  code: string;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`]*)$/;

/** Splits a document into its fenced code blocks and the prose lines between them. */
function scan(md: string): { blocks: CodeBlock[]; prose: { line: number; text: string }[] } {
  const blocks: CodeBlock[] = [];
  const prose: { line: number; text: string }[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] as string);
    if (!open) {
      prose.push({ line: i + 1, text: lines[i] as string });
      continue;
    }
    const fence = open[1] as string;
    const [lang = '', ...tags] = (open[2] as string).trim().split(/\s+/).filter(Boolean);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] as string;
      if (l.trim().startsWith(fence) && l.trim().replace(/[`~]/g, '') === '') break;
      body.push(l);
    }
    blocks.push({ line: i + 1, lang, tags, code: body.join('\n') });
    i = j;
  }
  return { blocks, prose };
}

export function codeBlocks(md: string): CodeBlock[] {
  return scan(md).blocks;
}

export interface Link {
  line: number;
  target: string;
}

/** Inline links and images outside code blocks and code spans. */
export function links(md: string): Link[] {
  const out: Link[] = [];
  for (const { line, text } of scan(md).prose) {
    const plain = text.replace(/`+[^`]*`+/g, '``');
    for (const m of plain.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g))
      out.push({ line, target: m[1] as string });
  }
  return out;
}

/** The anchors of a document's headings, as GitHub makes them (duplicates get -1, -2...). */
export function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text } of scan(md).prose) {
    const h = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (!h) continue;
    const slug = slugify(h[1] as string);
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

export function slugify(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text only
    .replace(/<[^>]+>/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}
