/**
 * docs/istio-conformance.md against the code and Istio's API definitions: its field table is what
 * scripts/istio-conformance.ts generates from fromIstio's tables (regenerate with
 * `node scripts/istio-conformance.ts`), every field of VirtualService and DestinationRule is in
 * it, every refused field says why, and at least 90% of the HTTP-relevant ones are honoured.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DOC,
  END,
  fieldsNotInApi,
  loadRows,
  normalize,
  parseProtos,
  render,
  START,
  summarize,
} from '../scripts/istio-conformance.ts';

const proto = (f: string) =>
  readFileSync(new URL(`./fixtures/istio/api/networking/v1alpha3/${f}`, import.meta.url), 'utf8');

describe('docs/istio-conformance.md', () => {
  const rows = loadRows();
  const doc = readFileSync(DOC, 'utf8');

  it('is the table the code generates (run `node scripts/istio-conformance.ts` after changing src/istio)', () => {
    const generated = doc.slice(doc.indexOf(START), doc.indexOf(END) + END.length);
    expect(normalize(generated)).toBe(normalize(render(rows)));
  });

  it('lists every field of every message VirtualService and DestinationRule use', () => {
    const protos = parseProtos([proto('virtual_service.proto'), proto('destination_rule.proto')]);
    // Spot checks of the parser on fields nested deep in oneofs and nested messages.
    expect(protos.get('HTTPRedirect')?.map((f) => f.name)).toEqual([
      'uri',
      'authority',
      'port',
      'derivePort',
      'scheme',
      'redirectCode',
      'prefixRewrite',
    ]);
    expect(protos.get('ConnectionPoolSettings.TCPSettings.TcpKeepalive')?.map((f) => f.name)).toEqual([
      'probes',
      'time',
      'interval',
    ]);
    const listed = new Set(rows.map((r) => `${r.message}.${r.field}`));
    for (const [message, fields] of protos) {
      if (![...listed].some((l) => l.startsWith(`${message}.`))) continue; // not reachable (none today)
      for (const f of fields) expect(listed.has(`${message}.${f.name}`), `${message}.${f.name}`).toBe(true);
    }
    expect(rows.length).toBeGreaterThan(200);
  });

  it('gives a reason for every refused field, and names no field Istio does not have', () => {
    expect(
      rows.filter((r) => r.status === 'refused' && (r.note === '' || r.note.includes('no reason'))),
    ).toEqual([]);
    const protos = parseProtos([proto('virtual_service.proto'), proto('destination_rule.proto')]);
    // websocketUpgrade was removed from Istio's API; old YAML still has it (accepted with a warning).
    expect(fieldsNotInApi(protos)).toEqual(['HTTPRoute.websocketUpgrade']);
  });

  it('honours at least 90% of the HTTP-relevant fields', () => {
    const s = summarize(rows);
    console.log(
      `istio conformance: ${s.honoured} of ${s.httpRelevant} HTTP-relevant fields honoured (${s.share}%)`,
    );
    expect(s.share).toBeGreaterThanOrEqual(90);
  });
});
