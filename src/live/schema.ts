/**
 * `liveConfig`: where a running mesh takes configuration changes from, besides `mesh.update`.
 * Read at createMesh (from code or MESHWORK_CONFIG); a later change to it is refused (restart
 * to watch other sources).
 */
import { z } from 'zod';
import { labels, period } from '../config/zod-helpers.ts';
import { consulSchema, etcdSchema } from '../discovery/schema.ts';

/** A directory of Istio YAML (VirtualService, DestinationRule, AuthorizationPolicy), converted by fromIstio. */
export const istioDirSchema = z.strictObject({
  dir: z.string().min(1),
  /** fromIstio's strict mode (default true): an unsupported field refuses the whole directory. */
  strict: z.boolean().optional(),
  /** fromIstio's options: namespace of documents without one, FQDN hosts, this workload's labels. */
  namespace: z.string().min(1).optional(),
  fqdn: z.boolean().optional(),
  workloadLabels: labels.optional(),
});

/** A Consul KV key holding a meshwork config (YAML or JSON), read with blocking queries. */
export const consulKeySchema = consulSchema
  .pick({ host: true, port: true, secure: true, token: true, dc: true, stale: true, wait: true })
  .extend({ key: z.string().min(1).regex(/^[^/]/, 'must not start with "/" (Consul keys are relative)') });

/** An etcd key holding a meshwork config (YAML or JSON), watched. */
export const etcdKeySchema = etcdSchema.pick({ hosts: true, username: true, password: true }).extend({
  key: z.string().min(1),
});

export const liveConfigSchema = z.strictObject({
  /**
   * The watched config file: a path (read at createMesh like MESHWORK_CONFIG, then watched), or
   * false to read MESHWORK_CONFIG once without watching it. Default: MESHWORK_CONFIG, watched.
   */
  file: z.union([z.string().min(1), z.literal(false)]).optional(),
  istio: istioDirSchema.optional(),
  consul: consulKeySchema.optional(),
  etcd: etcdKeySchema.optional(),
  /** How often watched files and directories are checked besides fs.watch events. Default 500ms. */
  pollInterval: period('checks the watched files').optional(),
});

export type LiveConfig = z.output<typeof liveConfigSchema>;
export type IstioDirConfig = z.output<typeof istioDirSchema>;
export type ConsulKeyConfig = z.output<typeof consulKeySchema>;
export type EtcdKeyConfig = z.output<typeof etcdKeySchema>;
