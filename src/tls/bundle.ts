/**
 * Trust bundles: the X.509 authorities of one SPIFFE trust domain, from PEM or from a SPIFFE
 * bundle (the JWKS document SPIRE's bundle endpoint serves), and the check that a peer's
 * certificate chains to one given bundle. Pure: no files, no sockets.
 */
import { X509Certificate } from 'node:crypto';

/** A SPIFFE trust domain name: lowercase letters, digits, `.`, `-`, `_` (SPIFFE ID spec). */
export const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle. Throws (with a message for the config error) when there is none or one does not parse. */
export function certificatesOfPem(pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new Error('holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new Error(`certificate #${i + 1} does not parse (${(err as Error).message})`);
    }
  });
}

/**
 * The X.509 authorities of a SPIFFE bundle (SPIFFE Trust Domain and Bundle spec): a JWKS whose
 * `keys` with `use: "x509-svid"` carry the authority in `x5c` (exactly one base64 DER
 * certificate). `jwt-svid` keys and keys of unknown use are ignored, as the spec says. Returns
 * the authorities as one PEM bundle. Throws with a message naming what is wrong.
 */
export function pemOfSpiffeBundle(json: string): string {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    throw new Error(`is not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new Error('is not a SPIFFE bundle (a JSON object with "keys")');
  const keys = (doc as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw new Error('is not a SPIFFE bundle: "keys" is not an array');
  const pems: string[] = [];
  for (const [i, key] of keys.entries()) {
    if (typeof key !== 'object' || key === null) throw new Error(`keys[${i}] is not an object`);
    const k = key as { use?: unknown; x5c?: unknown };
    if (k.use !== 'x509-svid') continue;
    if (!Array.isArray(k.x5c) || k.x5c.length !== 1 || typeof k.x5c[0] !== 'string')
      throw new Error(`keys[${i}] (use x509-svid) must have "x5c" with exactly one base64 certificate`);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(Buffer.from(k.x5c[0], 'base64'));
    } catch (err) {
      throw new Error(`keys[${i}].x5c[0] is not a certificate (${(err as Error).message})`);
    }
    pems.push(cert.toString());
  }
  if (pems.length === 0) throw new Error('has no x509-svid key (an X.509 authority)');
  return pems.join('');
}

function current(c: X509Certificate, now: number): boolean {
  return c.validFromDate.getTime() <= now && now <= c.validToDate.getTime();
}

/** True when `issuer` signed `cert` (names and signature). */
function issued(issuer: X509Certificate, cert: X509Certificate): boolean {
  if (!cert.checkIssued(issuer)) return false;
  try {
    return cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** The longest chain walked (leaf, intermediates, anchor), as OpenSSL's default depth bounds it. */
const MAX_DEPTH = 10;

/**
 * True when `leaf` chains to one of `anchors` through certificate authorities from `chain` (the
 * peer's presented intermediates), every link signed and in its validity period. The handshake
 * has verified the chain already (against all the bundles at once); this says which bundle
 * vouches for it, so that the anchors of one trust domain never vouch for an ID of another.
 */
export function chainsTo(
  leaf: X509Certificate,
  chain: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
  now: number = Date.now(),
): boolean {
  if (!current(leaf, now)) return false;
  let cur = leaf;
  const used = new Set<string>([leaf.fingerprint256]);
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    for (const a of anchors) if (current(a, now) && issued(a, cur)) return true;
    const next = chain.find((c) => c.ca && !used.has(c.fingerprint256) && current(c, now) && issued(c, cur));
    if (next === undefined) return false;
    used.add(next.fingerprint256);
    cur = next;
  }
  return false;
}
