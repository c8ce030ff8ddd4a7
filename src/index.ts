// First: refuse an old Node.js before anything else (undici among it) is evaluated.
import './node-version.ts';

export type { Balancer, PickContext } from './balancer/types.ts';
export { parseDuration } from './config/duration.ts';
export type { MeshConfig, MeshConfigInput } from './config/schema.ts';
export { meshFastify, meshHandler, meshRewriteUrl } from './context/adapters.ts';
export { signJws } from './context/jws.ts';
export type { ContextInit, MeshContext } from './context/store.ts';
export type { DiscoveryChange, DiscoveryProvider, DiscoverySink, EndpointSpec } from './discovery/types.ts';
export * from './errors.ts';
export type { MeshAgent } from './http/agent.ts';
export type { MeshCallOptions } from './http/call-options.ts';
export { fetchTransport } from './http/transport.ts';
export {
  type FromIstioOptions,
  type FromIstioResult,
  fromIstio,
  type IstioProblem,
  IstioUnsupportedError,
} from './istio/index.ts';
export type { ConfigSnapshot, ConfigUpdateMessage } from './live/controller.ts';
export type { LiveConfig } from './live/schema.ts';
export type { SourceStatus } from './live/source.ts';
export {
  type CreateMeshInput,
  createMesh,
  type EndpointSnapshot,
  Mesh,
  type MeshFetchInit,
  type MeshOptions,
  type MeshSnapshot,
  type ServiceSnapshot,
} from './mesh.ts';
export type { AdminHandler } from './telemetry/admin.ts';
export {
  CHANNELS,
  type CircuitBreakerMessage,
  type CircuitState,
  type DiscoveryChangeMessage,
  type DiscoveryErrorMessage,
  type EjectionMessage,
  type RequestMessage,
  type RetryBudgetExhaustedMessage,
  type RetryMessage,
} from './telemetry/channels.ts';
export type { Logger } from './telemetry/logger.ts';
export { snapshotProblems } from './telemetry/snapshot.ts';
export {
  endServerSpan,
  type ServerSpan,
  type ServerSpanOptions,
  startServerSpan,
} from './telemetry/tracing.ts';
export type { IdentitySnapshot, TlsSnapshot } from './tls/snapshot.ts';
