/**
 * The xDS bootstrap, in gRPC's format (which Istio's grpc-agent writes): where the control plane
 * is, how to reach it, who this node is, and where the certificate files are. Read once, at
 * createMesh, synchronously; every problem is a MeshworkConfigError line naming where the
 * bootstrap came from, the field and the value.
 *
 * Read as gRPC reads it (gRFC A27, A29, A47): `xds.bootstrap` (a path or an object), else the file
 * named by GRPC_XDS_BOOTSTRAP, else the JSON in GRPC_XDS_BOOTSTRAP_CONFIG.
 *
 *   xds_servers[0]: server_uri ("host:port", "unix:///path", "dns:///host:port"), channel_creds
 *     (the first supported of "insecure" and "tls"; tls takes ca_certificate_file,
 *     certificate_file, private_key_file), server_features ("xds_v3", "ignore_resource_deletion").
 *     Only the first server is used (no fallback to the others, gRFC A71).
 *   node: id, cluster, locality { region, zone, sub_zone }, metadata (any JSON object).
 *   certificate_providers: { name: { plugin_name: "file_watcher", config: { certificate_file,
 *     private_key_file, ca_certificate_file, refresh_interval } } }.
 *   client_default_listener_resource_name_template: "%s" by default (A47).
 *   Federation (`authorities`, xdstp:// names) is not supported: such a bootstrap is refused.
 */
import { readFileSync } from 'node:fs';
import { formatValue } from '../config/load.ts';
import { type ConfigIssue, MeshworkConfigError } from '../errors.ts';

export type ChannelCreds =
  | { type: 'insecure' }
  | { type: 'tls'; caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined };

export interface XdsServer {
  /** As written in the bootstrap. */
  uri: string;
  /** The @grpc/grpc-js target for it. */
  target: string;
  creds: ChannelCreds;
  features: readonly string[];
  /** `ignore_resource_deletion`: a resource missing from an LDS/CDS answer is kept (gRFC A53). */
  ignoreResourceDeletion: boolean;
}

export interface NodeInfo {
  id: string;
  cluster: string;
  locality?: { region?: string; zone?: string; sub_zone?: string } | undefined;
  /** google.protobuf.Struct as JSON. */
  metadata?: Record<string, unknown> | undefined;
}

export interface FileWatcherProvider {
  certificateFile?: string | undefined;
  privateKeyFile?: string | undefined;
  caCertificateFile?: string | undefined;
  /** ms; meshwork watches the files themselves and also reloads at this interval. */
  refreshIntervalMs?: number | undefined;
}

export interface Bootstrap {
  /** Where it came from: "xds.bootstrap", "/etc/istio/proxy/grpc-bootstrap.json", "GRPC_XDS_BOOTSTRAP_CONFIG". */
  source: string;
  server: XdsServer;
  node: NodeInfo;
  certificateProviders: ReadonlyMap<string, FileWatcherProvider>;
  /** Listener name for a URL authority: "%s" replaced by it. */
  listenerNameTemplate: string;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads and checks the bootstrap (see the file comment for where from). Throws MeshworkConfigError. */
export function loadBootstrap(given: string | Json | undefined, env: NodeJS.ProcessEnv): Bootstrap {
  if (given !== undefined && typeof given !== 'string')
    return parseBootstrap(given, { label: 'xds.bootstrap', source: 'xds.bootstrap' });
  if (typeof given === 'string') return parseBootstrap(readJson(given, 'xds.bootstrap'), fileLabel(given));
  const file = env.GRPC_XDS_BOOTSTRAP;
  if (file)
    return parseBootstrap(readJson(file, 'GRPC_XDS_BOOTSTRAP'), fileLabel(file, 'GRPC_XDS_BOOTSTRAP'));
  const inline = env.GRPC_XDS_BOOTSTRAP_CONFIG;
  if (inline) {
    let doc: unknown;
    try {
      doc = JSON.parse(inline);
    } catch (err) {
      throw new MeshworkConfigError([
        { path: 'GRPC_XDS_BOOTSTRAP_CONFIG', message: `is not valid JSON (${(err as Error).message})` },
      ]);
    }
    return parseBootstrap(doc, { label: 'GRPC_XDS_BOOTSTRAP_CONFIG', source: 'GRPC_XDS_BOOTSTRAP_CONFIG' });
  }
  throw new MeshworkConfigError([
    {
      path: 'xds.bootstrap',
      message:
        'is not set, and neither GRPC_XDS_BOOTSTRAP (a bootstrap file) nor GRPC_XDS_BOOTSTRAP_CONFIG (its JSON) is: give one of them',
    },
  ]);
}

function fileLabel(path: string, variable = 'xds.bootstrap'): { label: string; source: string } {
  return { label: `${variable} (${JSON.stringify(path)})`, source: path };
}

function readJson(path: string, label: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MeshworkConfigError([
      { path: label, message: `${JSON.stringify(path)} cannot be read (${(err as Error).message})` },
    ]);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MeshworkConfigError([
      { path: label, message: `${JSON.stringify(path)} is not valid JSON (${(err as Error).message})` },
    ]);
  }
}

class Issues {
  readonly list: ConfigIssue[] = [];
  readonly label: string;
  constructor(label: string) {
    this.label = label;
  }
  add(path: string, value: unknown, message: string): void {
    this.list.push({
      path: `${this.label}${path ? `.${path}` : ''}`,
      message: value === undefined ? message : `${formatValue(value)} ${message}`,
    });
  }
}

export function parseBootstrap(doc: unknown, from: { label: string; source: string }): Bootstrap {
  const issues = new Issues(from.label);
  if (!isObject(doc)) {
    issues.add('', doc, 'is not a JSON object (expected a gRPC xDS bootstrap)');
    throw new MeshworkConfigError(issues.list);
  }
  const server = parseServers(doc.xds_servers, issues);
  const node = parseNode(doc.node, issues);
  const certificateProviders = parseProviders(doc.certificate_providers, issues);
  let listenerNameTemplate = '%s';
  const tpl = doc.client_default_listener_resource_name_template;
  if (tpl !== undefined) {
    if (typeof tpl !== 'string' || tpl === '')
      issues.add('client_default_listener_resource_name_template', tpl, 'is not a non-empty string');
    else if (tpl.startsWith('xdstp:'))
      issues.add(
        'client_default_listener_resource_name_template',
        tpl,
        'is an xdstp:// name: xDS federation is not supported',
      );
    else listenerNameTemplate = tpl;
  }
  if (doc.authorities !== undefined && isObject(doc.authorities) && Object.keys(doc.authorities).length > 0)
    issues.add('authorities', undefined, 'is set: xDS federation (gRFC A47) is not supported');
  if (issues.list.length > 0 || server === undefined) throw new MeshworkConfigError(issues.list);
  return { source: from.source, server, node, certificateProviders, listenerNameTemplate };
}

function parseServers(value: unknown, issues: Issues): XdsServer | undefined {
  if (!Array.isArray(value) || value.length === 0) {
    issues.add('xds_servers', value, 'must be a non-empty list of servers');
    return undefined;
  }
  const s = value[0] as unknown;
  const p = 'xds_servers[0]';
  if (!isObject(s)) {
    issues.add(p, s, 'is not an object');
    return undefined;
  }
  const uri = s.server_uri;
  let target: string | undefined;
  if (typeof uri !== 'string' || uri === '') issues.add(`${p}.server_uri`, uri, 'is not a non-empty string');
  else {
    target = grpcTarget(uri);
    if (target === undefined)
      issues.add(
        `${p}.server_uri`,
        uri,
        'is not a server address ("host:port", "unix:///path" or "dns:///host:port")',
      );
  }
  const creds = parseCreds(s.channel_creds, `${p}.channel_creds`, issues);
  const features: string[] = [];
  if (s.server_features !== undefined) {
    if (!Array.isArray(s.server_features) || !s.server_features.every((f) => typeof f === 'string'))
      issues.add(`${p}.server_features`, s.server_features, 'is not a list of strings');
    else features.push(...(s.server_features as string[]));
  }
  if (target === undefined || creds === undefined) return undefined;
  return {
    uri: uri as string,
    target,
    creds,
    features,
    ignoreResourceDeletion: features.includes('ignore_resource_deletion'),
  };
}

/** A gRPC target for @grpc/grpc-js, or undefined when `uri` is not one. */
function grpcTarget(uri: string): string | undefined {
  if (/^unix:(\/\/)?\/[^\0]+$/.test(uri) || /^unix:[^/\0][^\0]*$/.test(uri)) return uri;
  if (/^unix-abstract:[^\0]+$/.test(uri)) return uri;
  const m = /^dns:(?:\/\/[^/]*\/)?(.+)$/.exec(uri);
  const hostPort = m ? (m[1] as string) : uri;
  // host, host:port, [v6]:port (gRPC's default port is 443).
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?$/.test(hostPort)) return undefined;
  const port = /:(\d{1,5})$/.exec(hostPort)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535) && !hostPort.startsWith('['))
    return undefined;
  return uri;
}

function parseCreds(value: unknown, path: string, issues: Issues): ChannelCreds | undefined {
  if (!Array.isArray(value) || value.length === 0) {
    issues.add(path, value, 'must be a non-empty list (e.g. [{ "type": "insecure" }])');
    return undefined;
  }
  const types: unknown[] = [];
  for (const [i, c] of value.entries()) {
    if (!isObject(c) || typeof c.type !== 'string') {
      issues.add(`${path}[${i}]`, c, 'is not an object with a "type"');
      return undefined;
    }
    types.push(c.type);
    // gRPC uses the first type it supports.
    if (c.type === 'insecure') return { type: 'insecure' };
    if (c.type === 'tls') {
      const cfg = c.config === undefined ? {} : c.config;
      if (!isObject(cfg)) {
        issues.add(`${path}[${i}].config`, cfg, 'is not an object');
        return undefined;
      }
      const file = (k: string): string | undefined => {
        const v = cfg[k];
        if (v === undefined) return undefined;
        if (typeof v !== 'string' || v === '')
          issues.add(`${path}[${i}].config.${k}`, v, 'is not a file path');
        return typeof v === 'string' ? v : undefined;
      };
      const creds: ChannelCreds = {
        type: 'tls',
        caFile: file('ca_certificate_file'),
        certFile: file('certificate_file'),
        keyFile: file('private_key_file'),
      };
      if ((creds.certFile === undefined) !== (creds.keyFile === undefined))
        issues.add(`${path}[${i}].config`, undefined, 'certificate_file and private_key_file go together');
      return creds;
    }
  }
  issues.add(path, types, 'has no supported type (meshwork supports "insecure" and "tls")');
  return undefined;
}

function parseNode(value: unknown, issues: Issues): NodeInfo {
  if (value === undefined) return { id: '', cluster: '' };
  if (!isObject(value)) {
    issues.add('node', value, 'is not an object');
    return { id: '', cluster: '' };
  }
  const str = (k: string): string => {
    const v = value[k];
    if (v === undefined) return '';
    if (typeof v !== 'string') {
      issues.add(`node.${k}`, v, 'is not a string');
      return '';
    }
    return v;
  };
  const node: NodeInfo = { id: str('id'), cluster: str('cluster') };
  if (value.locality !== undefined) {
    if (!isObject(value.locality)) issues.add('node.locality', value.locality, 'is not an object');
    else {
      const loc: NonNullable<NodeInfo['locality']> = {};
      for (const k of ['region', 'zone', 'sub_zone'] as const) {
        const v = value.locality[k];
        if (v === undefined) continue;
        if (typeof v !== 'string') issues.add(`node.locality.${k}`, v, 'is not a string');
        else loc[k] = v;
      }
      node.locality = loc;
    }
  }
  if (value.metadata !== undefined) {
    if (!isObject(value.metadata)) issues.add('node.metadata', value.metadata, 'is not an object');
    else node.metadata = value.metadata;
  }
  return node;
}

function parseProviders(value: unknown, issues: Issues): Map<string, FileWatcherProvider> {
  const out = new Map<string, FileWatcherProvider>();
  if (value === undefined) return out;
  if (!isObject(value)) {
    issues.add('certificate_providers', value, 'is not an object');
    return out;
  }
  for (const [name, p] of Object.entries(value)) {
    const path = `certificate_providers.${name}`;
    if (!isObject(p)) {
      issues.add(path, p, 'is not an object');
      continue;
    }
    if (p.plugin_name !== 'file_watcher') {
      issues.add(`${path}.plugin_name`, p.plugin_name, 'is not supported (meshwork supports "file_watcher")');
      continue;
    }
    const cfg = p.config ?? {};
    if (!isObject(cfg)) {
      issues.add(`${path}.config`, cfg, 'is not an object');
      continue;
    }
    const file = (k: string): string | undefined => {
      const v = cfg[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || v === '') {
        issues.add(`${path}.config.${k}`, v, 'is not a file path');
        return undefined;
      }
      return v;
    };
    const provider: FileWatcherProvider = {
      certificateFile: file('certificate_file'),
      privateKeyFile: file('private_key_file'),
      caCertificateFile: file('ca_certificate_file'),
    };
    if ((provider.certificateFile === undefined) !== (provider.privateKeyFile === undefined))
      issues.add(`${path}.config`, undefined, 'certificate_file and private_key_file go together');
    if (provider.certificateFile === undefined && provider.caCertificateFile === undefined)
      issues.add(
        `${path}.config`,
        undefined,
        'needs certificate_file and private_key_file, or ca_certificate_file',
      );
    if (cfg.refresh_interval !== undefined) {
      const ms = protoDurationMs(cfg.refresh_interval);
      if (ms === undefined || ms <= 0)
        issues.add(
          `${path}.config.refresh_interval`,
          cfg.refresh_interval,
          'is not a duration such as "600s"',
        );
      else provider.refreshIntervalMs = ms;
    }
    out.set(name, provider);
  }
  return out;
}

/** A google.protobuf.Duration in JSON: "1.5s", "600s" (or { seconds, nanos }). */
export function protoDurationMs(v: unknown): number | undefined {
  if (typeof v === 'string') {
    const m = /^(-?\d+)(?:\.(\d{1,9}))?s$/.exec(v);
    if (!m) return undefined;
    return Number(m[1]) * 1000 + Number(`0.${m[2] ?? '0'}`) * 1000;
  }
  if (isObject(v)) {
    const s = Number(v.seconds ?? 0);
    const n = Number(v.nanos ?? 0);
    return Number.isFinite(s) && Number.isFinite(n) ? s * 1000 + n / 1e6 : undefined;
  }
  return undefined;
}

/**
 * The certificate provider that gives this workload its identity: "default" (Istio's name), or
 * the only one there is. It becomes the mesh `identity` when the config has none.
 */
export function identityProvider(b: Bootstrap): { name: string; provider: FileWatcherProvider } | undefined {
  const pick =
    b.certificateProviders.get('default') !== undefined
      ? 'default'
      : b.certificateProviders.size === 1
        ? [...b.certificateProviders.keys()][0]
        : undefined;
  if (pick === undefined) return undefined;
  const provider = b.certificateProviders.get(pick) as FileWatcherProvider;
  if (!provider.certificateFile || !provider.privateKeyFile || !provider.caCertificateFile) return undefined;
  return { name: pick, provider };
}

/** The listener resource name for a URL authority (A47's template, "%s" by default). */
export function listenerName(b: Bootstrap, authority: string): string {
  return b.listenerNameTemplate.replaceAll('%s', authority);
}
