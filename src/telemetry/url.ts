/**
 * `url.full` without secrets: userinfo is never included, and the values of query parameters
 * whose names look like credentials are replaced by `REDACTED` (the OpenTelemetry
 * semantic-convention placeholder). Only computed when a span is actually recording.
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

/**
 * The full URL of a mesh request as the caller addressed it: scheme, logical authority
 * (`travels:8080`, never userinfo), path with secret query values redacted.
 */
export function fullUrl(scheme: string, authority: string, path: string | undefined): string {
  const at = authority.lastIndexOf('@');
  const host = at === -1 ? authority : authority.slice(at + 1);
  const p = path === undefined || path === '' ? '/' : path.startsWith('/') ? path : `/${path}`;
  return `${scheme}://${host}${redactPath(p)}`;
}
