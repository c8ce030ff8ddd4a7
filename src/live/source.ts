import type { LayerName } from './layers.ts';

/** What a watched source reports to the live-config controller. */
export interface SourceSink {
  /** A new document (already parsed); the controller validates and applies it. */
  doc(doc: unknown): void;
  /** The content cannot become a config (does not parse, fromIstio refused it): refused, last good kept. */
  invalid(err: Error): void;
  /** The source cannot be read (file missing, registry down, key absent): last good kept. */
  unavailable(err: Error): void;
  /** The source answered again after being unavailable, with nothing new. */
  recovered(): void;
}

/** A watched place the config comes from: a file, a directory of Istio YAML, a Consul or etcd key. */
export interface ConfigSource {
  readonly layer: LayerName;
  /** "file /etc/meshwork/mesh.yaml", "etcd /meshwork/config"... */
  readonly label: string;
  /** Read by createMesh already (a file, a directory): watching from the start. */
  readonly loaded?: boolean;
  start(sink: SourceSink): void;
  /** Stops every watcher, timer and connection; the process is free to exit after it resolves. */
  close(): Promise<void>;
}

/** One watched source as the snapshot shows it. */
export interface SourceStatus {
  source: string;
  state: 'starting' | 'watching' | 'unavailable' | 'closed';
  /** Documents read from it that were applied, unchanged or refused. */
  documents: number;
  lastDocumentAt?: string | undefined;
  /** Why the source cannot be read now (its last good document keeps running). */
  lastError?: string | undefined;
  /** Istio: resources left out (for hosts without discovery; unsupported fields when not strict). */
  warnings?: string[] | undefined;
}
