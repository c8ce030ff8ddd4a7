import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';

/** Subject alternative names of a certificate as `URI:spiffe://…`, `DNS:name`, `IP Address:…`. */
export function presentedSans(cert: { subjectaltname?: string | undefined }): string[] {
  const raw = cert.subjectaltname;
  if (!raw) return [];
  return raw.split(/,\s*/).filter((s) => s.length > 0);
}

/** The URI SAN `spiffe://…` of a certificate, or undefined. */
export function spiffeIdOf(cert: { subjectaltname?: string | undefined }): string | undefined {
  for (const san of presentedSans(cert)) if (san.startsWith('URI:spiffe://')) return san.slice(4);
  return undefined;
}

/** The SPIFFE ID in a PEM certificate (first URI SAN), for the mesh's own identity. */
export function spiffeIdOfPem(pem: string): string | undefined {
  try {
    return spiffeIdOf({ subjectaltname: new X509Certificate(pem).subjectAltName });
  } catch {
    return undefined;
  }
}

/** The trust domain of a SPIFFE ID: `spiffe://cluster.local/ns/x` → `cluster.local`. */
export function trustDomain(id: string): string | undefined {
  const m = /^spiffe:\/\/([^/]+)/.exec(id);
  return m?.[1];
}

function dnsMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (p === n) return true;
  // A certificate wildcard covers exactly one leftmost label.
  if (p.startsWith('*.')) {
    const dot = n.indexOf('.');
    return dot > 0 && n.slice(dot) === p.slice(1);
  }
  return false;
}

/**
 * True when the certificate presents one of the expected identities: a `spiffe://…` entry
 * must equal a URI SAN; anything else is a DNS name matched against the DNS SANs.
 */
export function sanMatches(expected: readonly string[], presented: readonly string[]): boolean {
  for (const want of expected) {
    for (const san of presented) {
      if (want.startsWith('spiffe://')) {
        if (san === `URI:${want}`) return true;
      } else if (san.startsWith('DNS:') && dnsMatches(san.slice(4), want)) return true;
    }
  }
  return false;
}

/**
 * The SPIFFE ID of an inbound request's mTLS peer, when the connection is TLS and the peer's
 * certificate was verified against the server's CA. Plain HTTP and unverified peers: undefined.
 */
export function peerPrincipal(socket: unknown): string | undefined {
  const s = socket as Partial<TLSSocket> | undefined;
  if (!s || typeof s.getPeerCertificate !== 'function' || s.authorized !== true) return undefined;
  const cert = s.getPeerCertificate(false) as PeerCertificate | null;
  if (!cert || Object.keys(cert).length === 0) return undefined;
  return spiffeIdOf(cert);
}
