import { z } from 'zod';

export const LB_ALGORITHMS = ['PEAK_EWMA'] as const;

/** `trafficPolicy.loadBalancer` (Istio's DestinationRule vocabulary). */
export const loadBalancerSchema = z.strictObject({
  simple: z.enum(LB_ALGORITHMS).optional(),
});

export type LoadBalancerConfig = z.output<typeof loadBalancerSchema>;
