/**
 * createMesh's first read of every config layer, synchronous and complete: the config file
 * (MESHWORK_CONFIG, or `liveConfig.file`), the config in code, and the Istio directory. Consul and
 * etcd are read once the mesh runs (their documents arrive as updates). Also builds the watchers,
 * so that a missing optional package or a bad address fails createMesh, not later.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { deepMerge, parseConfigText } from '../config/load.ts';
import type { MeshConfig } from '../config/schema.ts';
import { MeshworkConfigError } from '../errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { convertIstio, FileSource, IstioDirSource, readIstioDirSync } from './file-source.ts';
import { type LayerName, mergeLayers } from './layers.ts';
import { ConsulKeySource, EtcdKeySource } from './remote-source.ts';
import { liveConfigSchema } from './schema.ts';
import type { ConfigSource } from './source.ts';
import { IncrementalValidator } from './validate.ts';

export interface Boot {
  docs: Map<LayerName, unknown>;
  config: MeshConfig;
  /** The watchers, not started. */
  sources: ConfigSource[];
  /** The validator that validated `config`, holding its services for the next update. */
  validator: IncrementalValidator;
}

function readText(path: string, label: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new MeshworkConfigError([
      { path: label, message: `${JSON.stringify(path)} cannot be read (${(err as Error).message})` },
    ]);
  }
}

export function boot(code: object, env: NodeJS.ProcessEnv, logger: Logger): Boot {
  const docs = new Map<LayerName, unknown>();
  const envPath = env.MESHWORK_CONFIG || undefined;
  let filePath: string | undefined;
  let fileText: string | undefined;
  if (envPath) {
    fileText = readText(envPath, 'MESHWORK_CONFIG');
    docs.set('file', parseConfigText(fileText, envPath, 'MESHWORK_CONFIG'));
    filePath = envPath;
  }
  // liveConfig may come from the file or from code (code wins, as for every field).
  const base = deepMerge(docs.get('file') ?? {}, code) as { liveConfig?: unknown };
  const parsed = liveConfigSchema.safeParse(base.liveConfig ?? {});
  // Invalid liveConfig: the whole-config validation below reports it with the rest.
  const live = parsed.success ? parsed.data : {};
  if (typeof live.file === 'string') {
    if (envPath && resolve(live.file) !== resolve(envPath))
      throw new MeshworkConfigError([
        {
          path: 'liveConfig.file',
          message: `${JSON.stringify(live.file)} is another file than MESHWORK_CONFIG (${JSON.stringify(envPath)}): set one of them`,
        },
      ]);
    if (!envPath) {
      fileText = readText(live.file, 'liveConfig.file');
      docs.set('file', parseConfigText(fileText, live.file, 'liveConfig.file'));
      filePath = live.file;
    }
  }
  docs.set('code', code);
  let istioTexts: string[] | undefined;
  if (live.istio) {
    try {
      istioTexts = readIstioDirSync(live.istio);
    } catch (err) {
      throw new MeshworkConfigError([
        {
          path: 'liveConfig.istio.dir',
          message: `${JSON.stringify(live.istio.dir)} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        },
      ]);
    }
    docs.set(
      'istio',
      convertIstio(istioTexts, live.istio, (m) => logger.warn({ source: `istio ${live.istio?.dir}` }, m)),
    );
  }
  const merged = mergeLayers(docs);
  const validator = new IncrementalValidator();
  const config = validator.validate(merged.doc);
  for (const w of merged.warnings) logger.warn({ source: 'createMesh' }, w);
  const lc = config.liveConfig;
  const sources: ConfigSource[] = [];
  if (filePath && lc?.file !== false)
    sources.push(new FileSource(filePath, { pollInterval: lc?.pollInterval, initialText: fileText }));
  if (lc?.istio)
    sources.push(
      new IstioDirSource(lc.istio, { pollInterval: lc.pollInterval, initialTexts: istioTexts ?? [] }),
    );
  try {
    if (lc?.consul) sources.push(new ConsulKeySource(lc.consul, env));
    if (lc?.etcd) sources.push(new EtcdKeySource(lc.etcd, env));
  } catch (err) {
    for (const s of sources) void s.close();
    throw err;
  }
  return { docs, config, sources, validator };
}
