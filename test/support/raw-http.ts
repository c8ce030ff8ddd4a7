import { connect } from 'node:net';

export interface RawResponse {
  /** 0 when the server closed or reset the connection without an answer. */
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends one HTTP/1.1 request over a plain TCP socket, with the request target exactly as given
 * (fetch and undici would normalize absolute-form targets, dot segments and odd bytes away).
 * The target and headers are sent as UTF-8 bytes; `Connection: close` ends the response.
 */
export function rawRequest(
  port: number,
  target: string,
  opts: { method?: string; headers?: readonly (readonly [string, string])[] } = {},
): Promise<RawResponse> {
  const lines = [`${opts.method ?? 'GET'} ${target} HTTP/1.1`, 'Host: svc'];
  for (const [k, v] of opts.headers ?? []) lines.push(`${k}: ${v}`);
  lines.push('Connection: close', '', '');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    // write, not end: a half-closed client makes node:http close before an answer that takes a
    // moment (a token verified asynchronously); `Connection: close` ends the exchange instead.
    const socket = connect(port, '127.0.0.1', () => socket.write(Buffer.from(lines.join('\r\n'), 'utf8')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    const done = () => resolve(parse(Buffer.concat(chunks).toString('latin1')));
    socket.on('close', done);
    socket.on('error', () => undefined);
  });
}

function parse(text: string): RawResponse {
  const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(text);
  if (!m) return { status: 0, headers: {}, body: '' };
  const end = text.indexOf('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const line of text.slice(m[0].length, end).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = text.slice(end + 4);
  if (headers['transfer-encoding'] === 'chunked') body = unchunk(body);
  return { status: Number(m[1]), headers, body };
}

function unchunk(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const nl = s.indexOf('\r\n', i);
    if (nl < 0) break;
    const size = Number.parseInt(s.slice(i, nl), 16);
    if (!(size > 0)) break;
    out += s.slice(nl + 2, nl + 2 + size);
    i = nl + 2 + size + 2;
  }
  return out;
}
