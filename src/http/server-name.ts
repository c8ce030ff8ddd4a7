import { isIP } from 'node:net';

const MAX_CACHED = 256;
const cache = new Map<string, string>();

/**
 * The TLS server name undici would derive from a Host header value: the hostname without port or
 * brackets, or '' for an IP literal (not a valid SNI name, RFC 6066). undici derives it on every
 * request, with an IP-address regex; the mesh sends a handful of distinct Host values (service
 * names), so it is derived once per value here and handed to undici as `servername`.
 */
export function serverNameFor(host: string): string {
  let name = cache.get(host);
  if (name === undefined) {
    const hostname = host.startsWith('[')
      ? host.slice(1, Math.max(1, host.indexOf(']')))
      : host.includes(':')
        ? host.slice(0, host.indexOf(':'))
        : host;
    name = isIP(hostname) ? '' : hostname;
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(host, name);
  }
  return name;
}
