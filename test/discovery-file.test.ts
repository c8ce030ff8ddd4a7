import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileDiscovery } from '../src/discovery/file.ts';
import { RecordingSink } from './support/recording-sink.ts';

describe('file discovery', () => {
  let dir: string;
  let provider: FileDiscovery | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshwork-file-'));
  });
  afterEach(async () => {
    await provider?.close();
    provider = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function start(path: string, pollInterval = 60_000): RecordingSink {
    const sink = new RecordingSink();
    provider = new FileDiscovery({ path, pollInterval });
    provider.start(sink);
    return sink;
  }

  it('reads YAML, follows in-place edits and atomic renames', async () => {
    const path = join(dir, 'endpoints.yaml');
    writeFileSync(
      path,
      '- 127.0.0.2:8080\n- address: 127.0.0.3:8080\n  weight: 4\n  zone: z1\n  labels: { version: v2 }\n',
    );
    const sink = start(path);
    await sink.waitFor(() => sink.readyCount === 1);
    expect(sink.addresses()).toEqual(['127.0.0.2:8080', '127.0.0.3:8080']);
    expect(sink.endpoints.get('127.0.0.3:8080')).toMatchObject({
      weight: 4,
      zone: 'z1',
      labels: { version: 'v2' },
    });

    writeFileSync(path, 'endpoints:\n  - 127.0.0.3:8080\n');
    await sink.waitFor(() => sink.addresses().join() === '127.0.0.3:8080', 5_000, 'in-place edit');

    const tmp = join(dir, '.endpoints.yaml.tmp');
    writeFileSync(tmp, '["127.0.0.4:8080", "127.0.0.5:8080"]');
    renameSync(tmp, path);
    await sink.waitFor(
      () => sink.addresses().join() === '127.0.0.4:8080,127.0.0.5:8080',
      5_000,
      'atomic rename',
    );
    expect(sink.errors).toEqual([]);
  });

  it('skips a malformed entry; a broken or missing file keeps the last endpoints', async () => {
    const path = join(dir, 'endpoints.json');
    writeFileSync(
      path,
      JSON.stringify(['127.0.0.2:8080', 'not-an-address', { address: '127.0.0.3:1', weight: 0 }]),
    );
    const sink = start(path);
    await sink.waitFor(() => sink.readyCount === 1);
    expect(sink.addresses()).toEqual(['127.0.0.2:8080']);
    expect(sink.skips).toHaveLength(2);
    expect(sink.skips[0]?.reason).toMatch(/entry 1/);
    expect(sink.skips[1]?.reason).toMatch(/entry 2 .*weight/);

    writeFileSync(path, '{ "endpoints": [ broken');
    await sink.waitFor(() => sink.errors.length === 1, 5_000, 'parse error');
    rmSync(path);
    await sink.waitFor(() => sink.errors.length === 2, 5_000, 'missing file');
    expect(sink.addresses()).toEqual(['127.0.0.2:8080']);
    expect(sink.removes()).toBe(0);
    expect(provider!.status().state).toBe('degraded');

    writeFileSync(path, '[]');
    await sink.waitFor(() => sink.endpoints.size === 0, 5_000, 'explicit empty list');
    expect(provider!.status().state).toBe('ready');
  });

  it('the poll picks up changes when no watch event comes', async () => {
    const sub = join(dir, 'later');
    const path = join(sub, 'eps.json');
    // The directory does not exist yet: fs.watch cannot be set, only the poll sees the file.
    const sink = start(path, 100);
    await sink.waitFor(() => sink.errors.length === 1, 5_000, 'missing file error');
    expect(sink.readyCount).toBe(0);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(sub);
    writeFileSync(path, '["127.0.0.9:80"]');
    await sink.waitFor(() => sink.endpoints.size === 1, 5_000, 'poll');
    expect(sink.readyCount).toBe(1);
  });
});
