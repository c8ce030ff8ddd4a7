import { z } from 'zod';
import { hostPort, labels } from '../config/zod-helpers.ts';

/** One static endpoint: "host:port" or { address, labels, weight, zone }. */
export const staticEndpoint = z.union([
  hostPort,
  z.strictObject({
    address: hostPort,
    labels: labels.optional(),
    weight: z.number().int().positive().optional(),
    zone: z.string().min(1).optional(),
  }),
]);

/**
 * `services.<name>.discovery`: exactly one provider key.
 * Providers add their own key here (dns, consul, etcd, file).
 */
export const discoverySchema = z
  .strictObject({
    static: z.array(staticEndpoint).optional(),
  })
  .refine((d) => Object.values(d).filter((v) => v !== undefined).length === 1, {
    message: 'needs exactly one provider (static)',
  });

export type DiscoveryConfig = z.output<typeof discoverySchema>;
