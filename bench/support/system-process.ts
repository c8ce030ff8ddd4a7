// One bench system in its own process: `node system-process.ts <module> <export> <json args>`.
// The module's export builds the system (`{ call, close }`); the parent (interleaveBlocks in
// harness.ts) then drives it over IPC: warm up, run a block of requests, close. Each system gets
// its own heap, its own garbage collections and its own JIT feedback, as it would in a service.
import { pathToFileURL } from 'node:url';
import { warmUp } from './harness.ts';

export interface BuiltSystem {
  /** One request, body consumed; throws on failure. */
  call: () => Promise<void>;
  close: () => Promise<void>;
}

export type SystemFactory = (args: Record<string, unknown>) => Promise<BuiltSystem>;

/** Parent → child. */
export type SystemCommand =
  | { op: 'warm'; concurrency: number; w: { minSeconds: number; minRequests: number; maxSeconds: number } }
  | { op: 'block'; concurrency: number; requests: number }
  | { op: 'close' };

/** Child → parent, one per command. */
export type SystemReply =
  | { op: 'ready' }
  | { op: 'warm'; requests: number }
  | { op: 'block'; latUs: Int32Array; errors: number; wallMs: number; cpuUs: number }
  | { op: 'closed' }
  | { op: 'error'; message: string };

async function block(call: () => Promise<void>, concurrency: number, requests: number): Promise<SystemReply> {
  const latUs = new Int32Array(requests);
  let next = 0;
  let ok = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        const start = performance.now();
        try {
          await call();
          latUs[ok++] = Math.max(1, Math.round((performance.now() - start) * 1000));
        } catch {
          errors++;
        }
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { op: 'block', latUs: latUs.subarray(0, ok), errors, wallMs, cpuUs: cpu.user + cpu.system };
}

async function main(): Promise<void> {
  const [modulePath, exportName, json] = process.argv.slice(2);
  if (!modulePath || !exportName || !process.send)
    throw new Error('usage: system-process.ts <module> <export> <json>');
  const mod = (await import(pathToFileURL(modulePath).href)) as Record<string, SystemFactory>;
  const factory = mod[exportName];
  if (typeof factory !== 'function') throw new Error(`${modulePath} has no export ${exportName}`);
  const system = await factory(JSON.parse(json ?? '{}') as Record<string, unknown>);
  const send = (m: SystemReply) => process.send?.(m);
  process.on('message', (m: SystemCommand) => {
    const run = async (): Promise<SystemReply> => {
      if (m.op === 'warm') return { op: 'warm', requests: await warmUp(system.call, m.concurrency, m.w) };
      if (m.op === 'block') return block(system.call, m.concurrency, m.requests);
      await system.close();
      return { op: 'closed' };
    };
    run().then(
      (reply) => {
        send(reply);
        if (reply.op === 'closed') process.disconnect();
      },
      (err: unknown) => send({ op: 'error', message: String((err as Error)?.stack ?? err) }),
    );
  });
  // The parent going away ends this process too.
  process.on('disconnect', () => process.exit(0));
  send({ op: 'ready' });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
