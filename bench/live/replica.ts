// One replica for the live-config bench: `node bench/live/replica.ts <etcd-url> <key>`, forked
// with IPC. A mesh that takes its config from the etcd key; on every applied update it sends
// { round, at } (the `x-round` header value of its config, and the wall-clock ms it applied it),
// and exits when told { stop: true }.
import dc from 'node:diagnostics_channel';
import { CHANNELS, type ConfigUpdateMessage, createMesh } from '../../src/index.ts';

const [url, key] = process.argv.slice(2) as [string, string];
const mesh = createMesh({ env: {}, liveConfig: { etcd: { hosts: [url], key } } });

function round(): number | undefined {
  const set = mesh.config.services.api?.http?.[0]?.headers?.request?.set;
  const v = set?.['x-round'];
  return v === undefined ? undefined : Number(v);
}

dc.subscribe(CHANNELS.configUpdate, (m) => {
  const msg = m as ConfigUpdateMessage;
  if (msg.result !== 'applied') return;
  process.send?.({ round: round(), at: performance.timeOrigin + performance.now() });
});
process.on('message', (m: { stop?: boolean }) => {
  if (m.stop) void mesh.close().then(() => process.exit(0));
});
process.send?.({ started: true });
