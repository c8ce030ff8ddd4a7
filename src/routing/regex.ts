/**
 * Regular expressions in route matches, written in RE2 syntax (as Istio and Envoy take them)
 * and run by the JavaScript engine.
 *
 * The two dialects differ, so a pattern is checked once, at config time:
 * - constructs JavaScript has and RE2 lacks are refused (lookahead, lookbehind, backreferences,
 *   `\k<name>`): a config that works here must also work in Istio, and the other way round;
 * - RE2 spellings JavaScript lacks are translated: a leading `(?i)` becomes the `i` flag,
 *   `(?P<name>` becomes `(?<name>`, `\A` and `\z` become `^` and `$`;
 * - RE2 constructs with no JavaScript equivalent are refused (`\Q...\E`, `\C`, `\pN`, `\x{...}`,
 *   other inline flags such as `(?s)`), never silently read as something else.
 * Matching is a full match, as in Envoy: the pattern is anchored as `^(?:pattern)$`.
 */

/** Letter escapes with the same meaning in RE2 and JavaScript (non-unicode mode). */
const SAME_LETTER_ESCAPES = new Set(['d', 'D', 's', 'S', 'w', 'W', 'b', 'B', 'f', 'n', 'r', 't', 'v', 'x']);

interface Translated {
  source: string;
  ignoreCase: boolean;
}

/** Translates an RE2 pattern to a JavaScript one, or returns the reason it cannot be used. */
function translate(pattern: string): Translated | string {
  let i = 0;
  let ignoreCase = false;
  if (pattern.startsWith('(?i)')) {
    ignoreCase = true;
    i = 4;
  }
  let out = '';
  let inClass = false;
  while (i < pattern.length) {
    const c = pattern[i] as string;
    if (c === '\\') {
      const n = pattern[i + 1];
      if (n === undefined) return 'ends with a lone backslash';
      if (/[1-9]/.test(n) && !inClass) return `backreference \\${n} is not supported (RE2 has none)`;
      if (/[a-zA-Z]/.test(n)) {
        if (n === 'x' && pattern[i + 2] === '{') return '\\x{...} is not supported; use \\xHH';
        if (!inClass && n === 'A') {
          out += '^';
          i += 2;
          continue;
        }
        if (!inClass && n === 'z') {
          out += '$';
          i += 2;
          continue;
        }
        if (!SAME_LETTER_ESCAPES.has(n)) return `escape \\${n} is not supported`;
      }
      out += c + n;
      i += 2;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      i++;
      // A `]` right after `[` or `[^` is a literal in RE2.
      if (pattern[i] === '^') {
        out += '^';
        i++;
      }
      if (pattern[i] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && pattern[i + 1] === '?') {
      const rest = pattern.slice(i + 2, i + 4);
      if (rest.startsWith('=') || rest.startsWith('!')) return 'lookahead is not supported (RE2 has none)';
      if (rest === '<=' || rest === '<!') return 'lookbehind is not supported (RE2 has none)';
      if (rest === 'P<') {
        out += '(?<';
        i += 4;
        continue;
      }
      if (rest[0] === '<' || rest[0] === ':') {
        out += '(?';
        i += 2;
        continue;
      }
      // Inline flag groups: JavaScript has `(?i:...)` (and `(?-i:...)`), not `(?i)` mid-pattern.
      const flags = /^\(\?(-?[a-zA-Z]+)(-[a-zA-Z]+)?([:)])/.exec(pattern.slice(i));
      if (flags && flags[3] === ':' && /^-?i?(-i)?$/.test(flags[1]! + (flags[2] ?? ''))) {
        out += flags[0];
        i += flags[0].length;
        continue;
      }
      return `inline flags ${JSON.stringify(flags ? flags[0] : pattern.slice(i, i + 4))} are not supported (only a leading "(?i)" or "(?i:...)")`;
    }
    out += c;
    i++;
  }
  return { source: out, ignoreCase };
}

/** Why `pattern` cannot be used as a route regex, or undefined when it can. */
export function regexProblem(pattern: string): string | undefined {
  const t = translate(pattern);
  if (typeof t === 'string') return t;
  try {
    new RegExp(`^(?:${t.source})$`, t.ignoreCase ? 'i' : '');
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^Invalid regular expression: /, '');
  }
}

/** Compiles an RE2-syntax pattern into an anchored (full-match) RegExp. Throws when it cannot. */
export function compileRegex(pattern: string): RegExp {
  const t = translate(pattern);
  if (typeof t === 'string') throw new SyntaxError(`regex ${JSON.stringify(pattern)}: ${t}`);
  return new RegExp(`^(?:${t.source})$`, t.ignoreCase ? 'i' : '');
}

/**
 * Compiles an RE2-syntax pattern for search and replace (`rewrite.uriRegexRewrite`, Envoy's
 * regex_rewrite): not anchored, global, so every non-overlapping match is replaced.
 */
export function compileSearchRegex(pattern: string): RegExp {
  const t = translate(pattern);
  if (typeof t === 'string') throw new SyntaxError(`regex ${JSON.stringify(pattern)}: ${t}`);
  return new RegExp(t.source, t.ignoreCase ? 'gi' : 'g');
}
