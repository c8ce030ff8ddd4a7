import type { Logger } from '../telemetry/logger.ts';
import { TlsMaterial } from './material.ts';
import { spiffeIdOfPem } from './san.ts';
import type { IdentityConfig } from './schema.ts';
import { TrustDomains } from './trust.ts';

/**
 * The mesh-wide workload identity (`identity { cert, key, ca }`), watched for rotation, and the
 * trust domains it knows (`trustDomain`, `trustBundles`, `trustDomainAliases`).
 */
export class MeshIdentity {
  readonly material: TlsMaterial;
  readonly trust: TrustDomains;

  constructor(config: IdentityConfig, logger: Logger) {
    this.material = new TlsMaterial(
      {
        cert: { path: 'identity.cert', value: config.cert },
        key: { path: 'identity.key', value: config.key },
        ca: { path: 'identity.ca', value: config.ca },
      },
      logger,
    );
    try {
      this.trust = new TrustDomains(config, this.material, this.spiffeId, logger);
    } catch (err) {
      this.material.close();
      throw err;
    }
  }

  /** This workload's SPIFFE ID (URI SAN of its certificate). */
  get spiffeId(): string | undefined {
    const cert = this.material.pem.cert;
    return cert ? spiffeIdOfPem(cert) : undefined;
  }

  close(): void {
    this.trust.close();
    this.material.close();
  }
}
