// `npm run demo`: the Travelz scenario on static discovery, nothing to install beyond npm install.
// Starts each service in its own process on 127.0.0.1, writes each caller's mesh config,
// drives traffic through the portal, and prints what the mesh did.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'travelz-'));
const children: ChildProcess[] = [];
const say = (msg: string) => console.log(`\u25b8 ${msg}`);

async function start(script: string, args: string[], config?: object): Promise<number> {
  const env = { ...process.env };
  if (config) {
    const file = join(dir, `${args.join('-') || 'portal'}.json`);
    writeFileSync(file, JSON.stringify(config, null, 2));
    env.MESHWORK_CONFIG = file;
  }
  const child = spawn(process.execPath, [join(here, script), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const msg = JSON.parse(line) as { ready?: boolean; port: number };
    if (msg.ready) return msg.port;
  }
  throw new Error(`${script} ${args.join(' ')} exited before it was ready`);
}

function stopAll(): void {
  for (const c of children) c.kill('SIGTERM');
}
process.on('exit', stopAll);

try {
  say('starting the agency services, each in its own process on 127.0.0.1 ...');
  const flights = await start('service.ts', ['flights', 'v1']);
  const travelsV1 = await start('service.ts', ['travels', 'v1', 'flights'], {
    services: { flights: { discovery: { static: [`127.0.0.1:${flights}`] } } },
  });
  const travelsV2 = await start('service.ts', ['travels', 'v2', 'flights'], {
    services: { flights: { discovery: { static: [`127.0.0.1:${flights}`] } } },
  });
  const hotels = await start('service.ts', ['hotels', 'v1']);
  const portalConfig = {
    services: {
      travels: {
        discovery: {
          static: [
            { address: `127.0.0.1:${travelsV1}`, labels: { version: 'v1' } },
            { address: `127.0.0.1:${travelsV2}`, labels: { version: 'v2' } },
          ],
        },
      },
      hotels: { discovery: { static: [`127.0.0.1:${hotels}`] } },
    },
  };
  const portal = await start('portal.ts', [], portalConfig);
  say(
    `portal on :${portal}; travels v1 :${travelsV1}, v2 :${travelsV2}; flights :${flights}; hotels :${hotels}`,
  );
  say(
    'the portal calls http://travels and http://hotels by name; meshwork finds the endpoints (static discovery)',
  );

  const total = 60;
  let ok = 0;
  const versions: Record<string, number> = {};
  let sample: unknown;
  const concurrency = 4;
  for (let i = 0; i < total; i += concurrency) {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        const res = await fetch(`http://127.0.0.1:${portal}/book`);
        const body = (await res.json()) as { travels: { version: string; host: string; calls: unknown } };
        if (res.ok) ok++;
        versions[body.travels.version] = (versions[body.travels.version] ?? 0) + 1;
        sample ??= body;
      }),
    );
  }
  say('one answer, portal -> travels -> flights, with the Host each hop saw:');
  console.log(JSON.stringify(sample, null, 2).replace(/^/gm, '    '));

  const snap = (await (await fetch(`http://127.0.0.1:${portal}/snapshot`)).json()) as {
    services: Record<
      string,
      {
        loadBalancer: string;
        endpoints: { address: string; labels: Record<string, string>; ewmaMs: number }[];
      }
    >;
  };
  say(
    `${total} bookings through the portal, ${concurrency} at a time: ${ok} succeeded (${((100 * ok) / total).toFixed(1)}%)`,
  );
  say('requests per travels version (P2C peak-EWMA balancing):');
  console.table(versions);
  say("the portal's mesh.snapshot():");
  console.table(
    Object.entries(snap.services).flatMap(([service, s]) =>
      s.endpoints.map((e) => ({
        service,
        endpoint: e.address,
        version: e.labels.version ?? '',
        balancer: s.loadBalancer,
        'ewma ms': e.ewmaMs,
      })),
    ),
  );
  stopAll();
  process.exitCode = ok === total ? 0 : 1;
} catch (err) {
  console.error(err);
  stopAll();
  process.exitCode = 1;
}
