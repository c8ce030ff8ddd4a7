/**
 * Request-target normalization, as Envoy does it for Istio's `meshConfig.pathNormalization`, so
 * that a path policy, a route match and the application all see one path.
 *
 * In order:
 * 1. form: origin-form (`/p?q`) is kept; absolute-form (`http://host/p?q`, http or https) is
 *    reduced to its path and query; any other form (authority-form `host:port`, asterisk-form
 *    `*`, other schemes) is rejected;
 * 2. a `#fragment` is dropped (it is never part of a request target, RFC 9112 3.2);
 * 3. a space, control character, `%00` or a character above 0xFF is rejected, at every level;
 *    so are `%2F` and `%5C` with the default escaped-slashes action (REJECT_REQUEST);
 * 4. from BASE up, the path only (the query is left as it is), in one pass, decoding once:
 *    invalid percent-encoding is rejected; `%XX` of an unreserved character (ALPHA, DIGIT,
 *    `-`, `.`, `_`, `~`) is decoded; `%2F` and `%5C` follow the escaped-slashes action;
 *    every other `%xx` gets uppercase hex; a backslash becomes `/`; a byte 0x80-0xFF (Node
 *    reads the target as Latin-1) is percent-encoded; then dot segments are removed
 *    (RFC 3986 5.2.4: `..` never climbs above `/`);
 * 5. from MERGE_SLASHES up, runs of slashes are merged.
 *
 * Canonical targets (the usual case) are recognized by one scan and returned as the same
 * string, without allocating. The result is idempotent: normalizing it again changes nothing.
 */

/** Istio's `meshConfig.pathNormalization.normalization`. */
export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

/** Envoy's `path_with_escaped_slashes_action` for `%2F` / `%5C` (UNESCAPE_AND_REDIRECT excepted). */
export type EscapedSlashesAction = 'REJECT_REQUEST' | 'KEEP_UNCHANGED' | 'UNESCAPE_AND_FORWARD';

export interface PathNormalizationConfig {
  normalization?: PathNormalization | undefined;
  escapedSlashes?: EscapedSlashesAction | undefined;
}

/** Resolved options: every field set. */
export interface PathOptions {
  readonly normalization: PathNormalization;
  readonly escapedSlashes: EscapedSlashesAction;
}

export const DEFAULT_PATH_NORMALIZATION: PathNormalization = 'MERGE_SLASHES';
export const DEFAULT_ESCAPED_SLASHES: EscapedSlashesAction = 'REJECT_REQUEST';

/** Fills the defaults. DECODE_AND_MERGE_SLASHES means UNESCAPE_AND_FORWARD, as in Istio. */
export function pathOptions(config?: PathNormalizationConfig): PathOptions {
  const normalization = config?.normalization ?? DEFAULT_PATH_NORMALIZATION;
  const escapedSlashes =
    normalization === 'DECODE_AND_MERGE_SLASHES'
      ? 'UNESCAPE_AND_FORWARD'
      : (config?.escapedSlashes ?? DEFAULT_ESCAPED_SLASHES);
  return Object.freeze({ normalization, escapedSlashes });
}

export const DEFAULT_PATH_OPTIONS: PathOptions = pathOptions();

/** Why a request target was refused (a 400 inbound, an error outbound). Never thrown. */
export interface PathRejection {
  readonly rejected: true;
  readonly reason: string;
}

const reject = (reason: string): PathRejection => Object.freeze({ rejected: true, reason });
export const REJECTIONS = {
  empty: reject('empty request target'),
  asterisk: reject('asterisk-form request target (*) is not supported'),
  form: reject('request target is neither origin-form (/path) nor absolute-form (http://host/path)'),
  authority: reject('absolute-form request target has an empty or invalid authority'),
  control: reject('space or control character in the request target'),
  wide: reject('character above 0xFF in the request target'),
  percent: reject('invalid percent-encoding in the path'),
  nul: reject('percent-encoded NUL (%00) in the path'),
  slash: reject('percent-encoded slash or backslash (%2F, %5C) in the path'),
} as const;

export function isPathRejection(r: string | PathRejection): r is PathRejection {
  return typeof r !== 'string';
}

/**
 * The normalized request target (path and query), or why it is refused. Returns `target`
 * itself when it is already canonical.
 */
export function normalizeTarget(
  target: string,
  opts: PathOptions = DEFAULT_PATH_OPTIONS,
): string | PathRejection {
  if (isCanonical(target)) return target;
  return normalizeSlow(target, opts);
}

/** Characters a canonical path may hold besides `/` and `.`: unreserved, sub-delims, `:`, `@`. */
const SAFE = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~!$&'()*+,;=:@")
  SAFE[c.charCodeAt(0)] = 1;

const SLASH = 47;
const DOT = 46;
const QMARK = 63;

/**
 * One scan, no allocation: origin-form, only SAFE characters, `/` and `.` in the path, no `//`,
 * no dot segment, and a query of visible ASCII without `#`. Such a target is its own
 * normalization at every level.
 */
function isCanonical(t: string): boolean {
  const n = t.length;
  if (n === 0 || t.charCodeAt(0) !== SLASH) return false;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const c = t.charCodeAt(i);
    if (c === QMARK) {
      for (let j = i + 1; j < n; j++) {
        const d = t.charCodeAt(j);
        if (d <= 0x20 || d >= 0x7f || d === 35) return false;
      }
      return true;
    }
    if (c === SLASH) {
      if (prev === SLASH) return false;
    } else if (c === DOT) {
      if (prev === SLASH) {
        // `.` or `..` as a whole segment
        const d = i + 1 < n ? t.charCodeAt(i + 1) : SLASH;
        if (d === SLASH || d === QMARK) return false;
        if (d === DOT) {
          const e = i + 2 < n ? t.charCodeAt(i + 2) : SLASH;
          if (e === SLASH || e === QMARK) return false;
        }
      }
    } else if (c >= 128 || SAFE[c] !== 1) return false;
    prev = c;
  }
  return true;
}

const ABSOLUTE = /^https?:\/\/([^/?#]*)/i;
const AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%[\]]+$/;
const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    (c >= 48 && c <= 57) ||
    c === 45 ||
    c === 46 ||
    c === 95 ||
    c === 126
  );
}

function normalizeSlow(target: string, opts: PathOptions): string | PathRejection {
  let s = target;
  if (s.length === 0) return REJECTIONS.empty;
  if (s.charCodeAt(0) !== SLASH) {
    if (s === '*') return REJECTIONS.asterisk;
    const m = ABSOLUTE.exec(s);
    if (m === null) return REJECTIONS.form;
    if (!AUTHORITY.test(m[1] as string)) return REJECTIONS.authority;
    s = s.slice(m[0].length);
    if (s.charCodeAt(0) !== SLASH) s = `/${s}`;
  }
  const hash = s.indexOf('#');
  if (hash >= 0) s = s.slice(0, hash);
  const q = s.indexOf('?');
  const query = q < 0 ? '' : s.slice(q);
  for (let i = 1; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return REJECTIONS.control;
    if (c > 0xff) return REJECTIONS.wide;
  }
  const raw = q < 0 ? s : s.slice(0, q);
  const base = opts.normalization !== 'NONE';
  let path = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return REJECTIONS.control;
    if (c > 0xff) return REJECTIONS.wide;
    if (c === 37) {
      const h = hexValue(raw.charCodeAt(i + 1));
      const l = hexValue(raw.charCodeAt(i + 2));
      if (h < 0 || l < 0) {
        if (base) return REJECTIONS.percent;
        path += '%';
        continue;
      }
      const v = h * 16 + l;
      if (v === 0) return REJECTIONS.nul;
      if (v === 0x2f || v === 0x5c) {
        // The escaped-slashes action applies at every level, NONE included (as in Envoy).
        if (opts.escapedSlashes === 'REJECT_REQUEST') return REJECTIONS.slash;
        if (opts.escapedSlashes === 'UNESCAPE_AND_FORWARD') path += v === 0x2f || base ? '/' : '\\';
        else path += base ? (v === 0x2f ? '%2F' : '%5C') : raw.slice(i, i + 3);
      } else if (!base) {
        path += raw.slice(i, i + 3);
      } else if (isUnreserved(v)) {
        path += String.fromCharCode(v);
      } else {
        path += `%${HEX[h]}${HEX[l]}`;
      }
      i += 2;
    } else if (!base) {
      path += raw[i];
    } else if (c === 92) {
      path += '/'; // Envoy's BASE turns a backslash into a slash
    } else if (c >= 0x80) {
      path += `%${HEX[c >> 4]}${HEX[c & 15]}`;
    } else {
      path += raw[i];
    }
  }
  if (base) {
    path = removeDotSegments(path);
    if (opts.normalization !== 'BASE') path = mergeSlashes(path);
  }
  const out = path + query;
  return out === target ? target : out;
}

/** RFC 3986 5.2.4 for an absolute path (starts with `/`): `..` never climbs above the root. */
export function removeDotSegments(path: string): string {
  if (path.indexOf('/.') < 0) return path;
  const segments = path.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const seg = segments[i] as string;
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop();
      // A trailing dot segment leaves the directory: `/a/b/..` is `/a/`.
      if (i === last) out.push('');
      continue;
    }
    out.push(seg);
  }
  return `/${out.join('/')}`;
}

function mergeSlashes(path: string): string {
  return path.indexOf('//') < 0 ? path : path.replace(/\/{2,}/g, '/');
}

/** The path part of a normalized target (before `?`). */
export function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}
