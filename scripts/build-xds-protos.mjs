// Compiles the subset of Envoy's v3 API that meshwork's xDS client reads (ADS, listeners with
// the HTTP connection manager, routes, clusters, endpoints, the fault/router filters, upstream
// TLS and the load-balancing policy extensions) into one protobufjs JSON descriptor:
// src/xds/proto/envoy-v3.json. The runtime reads that file only when `xds` is configured, so no
// .proto file (and no other xDS package) is needed at runtime.
//
// The .proto sources are the ones @grpc/grpc-js-xds (a devDependency) vendors under deps/:
// envoyproxy/data-plane-api, cncf/xds, googleapis and protoc-gen-validate; protobufjs supplies the
// google/protobuf well-known types. Their licences and notices are in src/xds/proto/ next to the
// descriptor (and ship with it in dist/xds/).
//
// Run after changing the list below: `node scripts/build-xds-protos.mjs`; commit the output.
// `--check` compares instead of writing (exit 1 when the committed descriptor is stale).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const protobuf = require('protobufjs');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const INCLUDE = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(DEPS, d));
const PROTOBUFJS = dirname(require.resolve('protobufjs/package.json'));
const OUT = join(ROOT, 'src/xds/proto/envoy-v3.json');

/** The files whose messages the client decodes (their imports come along). */
const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/load_balancing_policies/pick_first/v3/pick_first.proto',
  'udpa/type/v1/typed_struct.proto',
  'xds/type/v3/typed_struct.proto',
];

const root = new protobuf.Root();
root.resolvePath = (origin, target) => {
  for (const dir of INCLUDE) {
    const p = join(dir, target);
    try {
      readFileSync(p);
      return p;
    } catch {}
  }
  // google/protobuf/*.proto: protobufjs's bundled well-known types (its common ones by name).
  if (target.startsWith('google/protobuf/'))
    return target in protobuf.common ? target : join(PROTOBUFJS, target);
  return protobuf.util.path.resolve(origin, target);
};
root.loadSync(FILES, { keepCase: true });
root.resolveAll();

// Options (validation rules, UDPA annotations, deprecation marks) are not needed to decode; only
// `packed` changes the wire format, and proto3 decoders read both encodings anyway.
function strip(node) {
  if (node && typeof node === 'object') {
    if (Array.isArray(node)) return node.map(strip);
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === 'options') {
        const keep = v && Object.hasOwn(v, 'packed') ? { packed: v.packed } : undefined;
        if (keep) out.options = keep;
        continue;
      }
      if (k === 'comment' || k === 'parsedOptions') continue;
      out[k] = strip(v);
    }
    return out;
  }
  return node;
}

// Namespaces that only define options (validation rules, annotations), and protobuf's
// descriptor messages those options extend: dropped with the options themselves.
const OPTION_ONLY = ['validate', 'udpa.annotations', 'xds.annotations', 'envoy.annotations'];
const json = strip(root.toJSON({ keepComments: false }));
for (const path of OPTION_ONLY) {
  const parts = path.split('.');
  const last = parts.pop();
  let node = json;
  for (const p of parts) node = node.nested[p];
  delete node.nested[last];
}
const WELL_KNOWN = /^(Any|Duration|Timestamp|Empty|Struct|Value|NullValue|ListValue|\w+Value)$/;
const pb = json.nested.google.nested.protobuf.nested;
for (const name of Object.keys(pb)) if (!WELL_KNOWN.test(name)) delete pb[name];
// Proof that nothing left refers to what was dropped: the descriptor loads and resolves alone.
protobuf.Root.fromJSON(json).resolveAll();

const text = `${JSON.stringify(json)}\n`;
if (process.argv.includes('--check')) {
  const now = readFileSync(OUT, 'utf8');
  if (now !== text) {
    console.error(`${OUT} is stale: run node scripts/build-xds-protos.mjs`);
    process.exit(1);
  }
  console.log(`${OUT} is up to date (${text.length} bytes)`);
} else {
  writeFileSync(OUT, text);
  console.log(`wrote ${OUT} (${text.length} bytes)`);
}
