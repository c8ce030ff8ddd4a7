import type { Logger } from '../telemetry/logger.ts';
import { TlsMaterial } from './material.ts';
import { spiffeIdOfPem } from './san.ts';
import type { IdentityConfig } from './schema.ts';

/** The mesh-wide workload identity (`identity { cert, key, ca }`), watched for rotation. */
export class MeshIdentity {
  readonly material: TlsMaterial;

  constructor(config: IdentityConfig, logger: Logger) {
    this.material = new TlsMaterial(
      {
        cert: { path: 'identity.cert', value: config.cert },
        key: { path: 'identity.key', value: config.key },
        ca: { path: 'identity.ca', value: config.ca },
      },
      logger,
    );
  }

  /** This workload's SPIFFE ID (URI SAN of its certificate). */
  get spiffeId(): string | undefined {
    const cert = this.material.pem.cert;
    return cert ? spiffeIdOfPem(cert) : undefined;
  }

  close(): void {
    this.material.close();
  }
}
