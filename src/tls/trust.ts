import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { formatPath } from '../config/load.ts';
import { MeshworkConfigError } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { certificatesOfPem, chainsTo } from './bundle.ts';
import { TlsMaterial } from './material.ts';
import { spiffeIdOf, trustDomain } from './san.ts';
import type { IdentityConfig } from './schema.ts';

/** What an inbound peer's certificate is worth: its SPIFFE ID, or why it is refused. */
export type PeerVerdict = { principal: string | undefined; refused?: undefined } | { refused: string };

/** Istio's default trust domain: in an AuthorizationPolicy it stands for the current one. */
const ISTIO_DEFAULT_DOMAIN = 'cluster.local';

const UNVERIFIED: PeerVerdict = Object.freeze({ principal: undefined });

/**
 * The trust domains a workload knows: its own (bundle `identity.ca`, shared with the identity's
 * material), its aliases (Istio's trustDomainAliases: the own domain under another name) and the
 * federated ones (`identity.trustBundles`, each a watched PEM or SPIFFE bundle). Answers which
 * bundle vouches for which SPIFFE ID: a domain's authorities never vouch for another domain's IDs.
 */
export class TrustDomains {
  /** The own trust domain (`identity.trustDomain`, else the domain of the identity's certificate). */
  readonly own: string | undefined;
  /** Aliases of the own domain. */
  readonly aliases: ReadonlySet<string>;
  readonly #ownMaterial: TlsMaterial;
  readonly #foreign = new Map<string, TlsMaterial>();
  readonly #listeners = new Set<() => void>();
  readonly #anchors = new Map<string, X509Certificate[]>();
  readonly #verdicts = new WeakMap<object, PeerVerdict>();
  #ownAnchors: X509Certificate[] | undefined;
  /** The intermediate CAs of the identity's own certificate file (after its leaf). */
  #ownIntermediates: X509Certificate[] | undefined;
  /** Inbound peers refused because no bundle of their trust domain vouches for them. */
  refused = 0;

  constructor(config: IdentityConfig, ownMaterial: TlsMaterial, ownId: string | undefined, logger: Logger) {
    this.#ownMaterial = ownMaterial;
    this.own = config.trustDomain ?? (ownId ? trustDomain(ownId) : undefined);
    this.aliases = new Set((config.trustDomainAliases ?? []).filter((a) => a !== this.own));
    const certDomain = ownId ? trustDomain(ownId) : undefined;
    if (certDomain !== undefined && certDomain !== this.own && !this.aliases.has(certDomain))
      logger.warn(
        { path: 'identity.trustDomain', trustDomain: this.own, certificate: ownId },
        'identity.cert is not in identity.trustDomain nor in one of its aliases: peers of its own domain will be refused',
      );
    const bundles = config.trustBundles ?? {};
    if (this.own === undefined && (Object.keys(bundles).length > 0 || this.aliases.size > 0))
      throw new MeshworkConfigError([
        {
          path: 'identity.trustDomain',
          message:
            'is needed with trustBundles or trustDomainAliases: identity.cert has no spiffe:// URI SAN to take the own trust domain from',
        },
      ]);
    if (this.own !== undefined && this.own in bundles)
      throw new MeshworkConfigError([
        {
          path: formatPath(['identity', 'trustBundles', this.own]),
          message: `is the own trust domain (the domain of identity.cert): its bundle is identity.ca`,
        },
      ]);
    ownMaterial.onChange(() => {
      this.#ownAnchors = undefined;
      this.#ownIntermediates = undefined;
      this.#emit();
    });
    try {
      for (const [td, b] of Object.entries(bundles)) {
        const path = formatPath(['identity', 'trustBundles', td]);
        const field =
          typeof b === 'string'
            ? { path, value: b, format: 'pem-bundle' as const }
            : { path: `${path}.spiffeBundle`, value: b.spiffeBundle, format: 'spiffe-bundle' as const };
        const m = new TlsMaterial({ ca: field }, logger);
        this.#foreign.set(td, m);
        m.onChange(() => {
          this.#anchors.delete(td);
          logger.info({ trustDomain: td, path: field.path }, 'trust bundle reloaded');
          this.#emit();
        });
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** The trust domains with a bundle: the own one (when known) and the federated ones. */
  get domains(): string[] {
    return [...(this.own !== undefined ? [this.own] : []), ...this.#foreign.keys()];
  }

  /** New bundles taken from the files of `identity.trustBundles` (the own CA's are the identity's rotations). */
  get rotations(): number {
    let n = 0;
    for (const m of this.#foreign.values()) n += m.rotations;
    return n;
  }

  /** Bundle reloads refused (unreadable or invalid files): the previous bundle stays in use. */
  get reloadErrors(): number {
    let n = 0;
    for (const m of this.#foreign.values()) n += m.reloadErrors;
    return n;
  }

  /** True when federated bundles are configured (the handshake CA list is then a union). */
  get federated(): boolean {
    return this.#foreign.size > 0;
  }

  /** An alias names the own domain. */
  canonical(td: string): string {
    return this.aliases.has(td) && this.own !== undefined ? this.own : td;
  }

  /** The domains that verify against the same bundle as `td` (the own domain and its aliases, or `td`). */
  equivalents(td: string): string[] {
    const c = this.canonical(td);
    return c === this.own ? [c, ...this.aliases] : [c];
  }

  /**
   * A SPIFFE ID or an Istio principal (`td/ns/x/sa/y`, `spiffe://td/...`) with an alias domain
   * replaced by the own domain; anything else unchanged.
   */
  canonicalId(id: string): string {
    if (this.aliases.size === 0 || this.own === undefined) return id;
    const scheme = id.startsWith('spiffe://') ? 'spiffe://' : '';
    const rest = id.slice(scheme.length);
    const slash = rest.indexOf('/');
    const td = slash < 0 ? rest : rest.slice(0, slash);
    if (!this.aliases.has(td)) return id;
    return `${scheme}${this.own}${slash < 0 ? '' : rest.slice(slash)}`;
  }

  /**
   * canonicalId for authorization principals, plus Istio's rule that `cluster.local` in a
   * policy points at the current trust domain (and its aliases), unless `cluster.local` is a
   * federated domain of its own here. A peer cannot present a `cluster.local` ID otherwise (it
   * has no bundle), so mapping both sides is safe.
   */
  policyId(id: string): string {
    const c = this.canonicalId(id);
    if (
      this.own === undefined ||
      this.own === ISTIO_DEFAULT_DOMAIN ||
      this.#foreign.has(ISTIO_DEFAULT_DOMAIN)
    )
      return c;
    const scheme = c.startsWith('spiffe://') ? 'spiffe://' : '';
    const rest = c.slice(scheme.length);
    if (rest !== ISTIO_DEFAULT_DOMAIN && !rest.startsWith(`${ISTIO_DEFAULT_DOMAIN}/`)) return c;
    return `${scheme}${this.own}${rest.slice(ISTIO_DEFAULT_DOMAIN.length)}`;
  }

  /** The bundle (PEM) that verifies IDs of `td`, or undefined when there is none. */
  bundlePem(td: string): string | undefined {
    const c = this.canonical(td);
    if (c === this.own) return this.#ownMaterial.pem.ca;
    return this.#foreign.get(c)?.pem.ca;
  }

  /** Every bundle at once: the CA list a server hands the handshake (each peer is then checked against its own domain's). */
  allPem(): string | undefined {
    if (this.#foreign.size === 0) return this.#ownMaterial.pem.ca;
    const own = this.#ownMaterial.pem.ca ?? '';
    const sep = own.endsWith('\n') || own === '' ? '' : '\n';
    return own + sep + [...this.#foreign.values()].map((m) => m.pem.ca ?? '').join('\n');
  }

  /** Called when any bundle (the own CA included) changes. */
  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #emit(): void {
    for (const fn of this.#listeners) fn();
  }

  #anchorsOf(td: string): X509Certificate[] | undefined {
    const c = this.canonical(td);
    if (c === this.own) {
      this.#ownAnchors ??= parsed(this.#ownMaterial.pem.ca);
      return this.#ownAnchors;
    }
    const m = this.#foreign.get(c);
    if (m === undefined) return undefined;
    let a = this.#anchors.get(c);
    if (a === undefined) {
      a = parsed(m.pem.ca);
      this.#anchors.set(c, a);
    }
    return a;
  }

  /**
   * The verdict on an inbound TLS connection's peer, once per connection: no principal for
   * plaintext or an unverified certificate (PERMISSIVE); the SPIFFE ID when the bundle of its
   * trust domain (the own one for an ID without a SPIFFE URI SAN) vouches for the certificate;
   * otherwise refused, with the reason.
   */
  verifyPeer(socket: unknown): PeerVerdict {
    const s = socket as Partial<TLSSocket> | undefined;
    if (!s || typeof s.getPeerX509Certificate !== 'function' || s.authorized !== true) return UNVERIFIED;
    const cached = this.#verdicts.get(s);
    if (cached !== undefined) return cached;
    const v = this.#judge(s as TLSSocket);
    this.#verdicts.set(s, v);
    if (v.refused !== undefined) this.refused++;
    return v;
  }

  #judge(s: TLSSocket): PeerVerdict {
    const leaf = s.getPeerX509Certificate();
    if (leaf === undefined) return UNVERIFIED;
    const id = spiffeIdOf({ subjectaltname: leaf.subjectAltName });
    const td = id !== undefined ? trustDomain(id) : this.own;
    // Without a known own domain there is no federation (the constructor refuses it): the CA
    // list is the own bundle alone, and the handshake verified against it.
    if (td === undefined) return { principal: id };
    const anchors = this.#anchorsOf(td);
    if (anchors === undefined)
      return {
        refused: `the client certificate ${id ?? '(no SPIFFE ID)'} is in trust domain "${td}", which has no trust bundle (identity.trustBundles)`,
      };
    // One bundle in the handshake: the handshake already checked the chain against it.
    if (this.#foreign.size === 0) return { principal: id };
    // Node's TLS server shows the peer's leaf but not the intermediates it sent: the links
    // known are what Node has of the chain and the intermediates of the own certificate file
    // (an Istio workload's cert-chain.pem: the same istiod CA issues its peers).
    this.#ownIntermediates ??= parsed(this.#ownMaterial.pem.cert)
      .slice(1)
      .filter((c) => c.ca);
    if (chainsTo(leaf, [...peerChain(s), ...this.#ownIntermediates], anchors)) return { principal: id };
    return {
      refused:
        `the client certificate ${id ?? '(no SPIFFE ID)'} is not issued by the trust bundle of its trust domain "${td}"` +
        ` (or by an intermediate CA the server cannot see: Node does not expose a client's intermediates, so those of a trust domain go in its bundle)`,
    };
  }

  close(): void {
    for (const m of this.#foreign.values()) m.close();
    this.#foreign.clear();
    this.#listeners.clear();
  }
}

function parsed(pem: string | undefined): X509Certificate[] {
  if (pem === undefined) return [];
  try {
    return certificatesOfPem(pem);
  } catch {
    return [];
  }
}

/** The certificates the peer presented above its leaf (what Node has of its chain). */
function peerChain(s: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<PeerCertificate>();
  let c = s.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
  while (c?.issuerCertificate && !seen.has(c.issuerCertificate) && out.length < 10) {
    seen.add(c);
    c = c.issuerCertificate as PeerCertificate & { issuerCertificate?: PeerCertificate };
    if (c.raw) {
      try {
        out.push(new X509Certificate(c.raw));
      } catch {
        // An unparsable certificate cannot be a link.
      }
    }
  }
  return out;
}
