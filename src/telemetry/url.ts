/**
 * URLs without secrets. `url.full`: userinfo becomes `REDACTED:REDACTED@` and the values of query
 * parameters whose names look like credentials become `REDACTED` (the OpenTelemetry
 * semantic-convention placeholder); only computed when a span is actually recording. Error
 * messages and logs: `redactUrl` for a URL the mesh was given, `redactUrlsIn` for a text that may
 * quote one (a registry client's error).
 */

/** Query keys (lowercased) whose values are always redacted. */
const SECRET_KEYS = new Set([
  'token',
  'key',
  'secret',
  'password',
  'passwd',
  'pwd',
  'signature',
  'sig',
  'apikey',
  'api_key',
  'api-key',
  'access_token',
  'refresh_token',
  'id_token',
  'client_secret',
  'auth',
  'authorization',
  'credential',
  'credentials',
  'session',
  'sessionid',
  'awsaccesskeyid',
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'x-goog-signature',
  'x-goog-credential',
]);

/** Also redacted: any key ending in one of these (`my_token`, `db-password`, `x-api-key`...). */
const SECRET_SUFFIXES = ['token', 'secret', 'password', 'signature', '_key', '-key', 'apikey'];

export const REDACTED = 'REDACTED';

export function isSecretQueryKey(rawKey: string): boolean {
  let key = rawKey;
  if (key.includes('%') || key.includes('+')) {
    try {
      key = decodeURIComponent(key.replace(/\+/g, ' '));
    } catch {
      // keep the raw key
    }
  }
  key = key.toLowerCase();
  if (SECRET_KEYS.has(key)) return true;
  for (const s of SECRET_SUFFIXES) if (key.endsWith(s)) return true;
  return false;
}

/** Redacts secret query values in a request target (`/path?a=1&token=x#frag`); drops the fragment. */
export function redactPath(path: string): string {
  const hash = path.indexOf('#');
  const target = hash === -1 ? path : path.slice(0, hash);
  const q = target.indexOf('?');
  if (q === -1) return target;
  const query = target.slice(q + 1);
  if (query === '') return target;
  const parts = query.split('&');
  let changed = false;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const eq = part.indexOf('=');
    const key = eq === -1 ? part : part.slice(0, eq);
    if (eq !== -1 && isSecretQueryKey(key)) {
      parts[i] = `${key}=${REDACTED}`;
      changed = true;
    }
  }
  return changed ? `${target.slice(0, q + 1)}${parts.join('&')}` : target;
}

/** The semantic conventions' replacement for userinfo. */
export const REDACTED_USERINFO = `${REDACTED}:${REDACTED}@`;

/**
 * The full URL of a mesh request as the caller addressed it: scheme, logical authority
 * (`travels:8080`; userinfo, which the mesh never sends, would be `REDACTED:REDACTED@`), path with
 * secret query values redacted.
 */
export function fullUrl(scheme: string, authority: string, path: string | undefined): string {
  const at = authority.lastIndexOf('@');
  const host = at === -1 ? authority : `${REDACTED_USERINFO}${authority.slice(at + 1)}`;
  const p = path === undefined || path === '' ? '/' : path.startsWith('/') ? path : `/${path}`;
  return `${scheme}://${host}${redactPath(p)}`;
}

const SCHEME = /^\s*[a-z][a-z0-9+.-]*:\/\//i;

/**
 * A URL given to the mesh, fit for an error message or a log: its userinfo, if any, becomes
 * `REDACTED:REDACTED@`. When a string does not parse as a `scheme://` URL, everything between its
 * scheme (if any) and its last `@` is replaced, since where its userinfo ends cannot be known.
 */
export function redactUrl(input: string): string {
  const scheme = SCHEME.exec(input);
  if (scheme !== null) {
    let url: URL | undefined;
    try {
      url = new URL(input);
    } catch {
      url = undefined;
    }
    if (url !== undefined) {
      if (url.username === '' && url.password === '') return input;
      url.username = REDACTED;
      url.password = REDACTED;
      return url.href;
    }
  }
  const at = input.lastIndexOf('@');
  if (at === -1) return input;
  const start = scheme?.[0].length ?? 0;
  return `${input.slice(0, start)}${REDACTED_USERINFO}${input.slice(at + 1)}`;
}

/** True when an address (`scheme://host:port`, or `host:port`) carries userinfo before its host. */
export function hasUserinfo(address: string): boolean {
  const start = SCHEME.exec(address)?.[0].length ?? 0;
  const rest = address.slice(start);
  const end = rest.search(/[/?#]/);
  return (end === -1 ? rest : rest.slice(0, end)).includes('@');
}

/** `scheme://userinfo@` anywhere in a text; the userinfo runs to the last `@` before a `/`, `?` or `#`. */
const USERINFO_IN_TEXT = /([a-z][a-z0-9+.-]*:\/\/)[^/?#\\"'<>`]*@/gi;

/** Redacts the userinfo of every `scheme://user:password@host` quoted in a text. */
export function redactUrlsIn(text: string): string {
  return text.includes('@') ? text.replace(USERINFO_IN_TEXT, `$1${REDACTED_USERINFO}`) : text;
}

/** The same error, or a copy whose message (and stack) quote no URL credentials. */
export function redactError(err: Error): Error {
  const message = redactUrlsIn(err.message);
  if (message === err.message) return err;
  const copy = new Error(message);
  copy.name = err.name;
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) (copy as { code?: unknown }).code = code;
  return copy;
}
