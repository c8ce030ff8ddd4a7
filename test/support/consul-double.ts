/**
 * A faithful double of the part of Consul's HTTP API that discovery uses
 * (GET /v1/health/service/:name), following shared/consul-api.md. No Consul agent can be
 * installed here, so the consul provider is tested against this.
 *
 * Covered: `passing` (Go ParseBool, empty = true; an instance is dropped when ANY of its checks,
 * node serfHealth included, is not passing), repeatable `tag`, `dc` (unknown dc -> 500 "No path to
 * datacenter"), `filter` (subset below), `index`/`wait` blocking queries (wait defaults to 5m,
 * capped at 10m, plus random extra up to wait/16; index 0 or absent answers at once; a bad wait or
 * index is a 400), X-Consul-Index / X-Consul-KnownLeader / X-Consul-LastContact headers, an unknown
 * service answering 200 [] with an index, X-Consul-Token checking when `token` is set (403 "ACL not
 * found"), and the response body shape { Node, Service, Checks }.
 *
 * Filter subset: `<selector> == "v"`, `<selector> != "v"`, `"v" in <selector>`,
 * `"v" not in <selector>`, joined with `and`. Selectors: Service.ID, Service.Service,
 * Service.Address, Service.Port, Service.Tags, Service.Meta.<k>, Node.Node, Node.Address,
 * Node.Datacenter, Node.Meta.<k>. Anything else is a 400, as Consul answers an invalid filter.
 *
 * Test controls: register/deregister instances, set check and node health, count requests,
 * make the index go backwards, fail every request with a 500, stop and restart on the same port.
 *
 * KV store (config from Consul, `liveConfig.consul`): GET /v1/kv/:key answers
 * `[{ LockIndex, Key, Flags, Value (base64, null when empty), CreateIndex, ModifyIndex }]` with
 * X-Consul-Index; a missing key is a 404 with an empty body and still an X-Consul-Index (so a
 * client can block until the key appears); `index`/`wait` block as above on the key's own index
 * (the raft index of its last write or delete). PUT /v1/kv/:key stores the body and answers
 * `true`; DELETE answers `true`. Same token and dc checks. Test controls: putKey, deleteKey.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type CheckStatus = 'passing' | 'warning' | 'critical';

export interface InstanceInput {
  id: string;
  service: string;
  port: number;
  /** Service.Address; "" (the default) means "use the node's address". */
  address?: string;
  tags?: string[];
  meta?: Record<string, string>;
  weights?: { Passing: number; Warning: number };
  /** Node name; default "node-<id>". */
  node?: string;
  nodeAddress?: string;
  nodeMeta?: Record<string, string>;
  /** Service checks (id -> status); default one "service:<id>" check, passing. */
  checks?: Record<string, CheckStatus>;
}

interface Instance {
  input: InstanceInput;
  checks: Map<string, CheckStatus>;
  createIndex: number;
  modifyIndex: number;
}

interface Waiter {
  check(): void;
}

export class ConsulDouble {
  readonly datacenter: string;
  readonly token: string | undefined;
  #server: Server | undefined;
  #port = 0;
  #sockets = new Set<Socket>();
  #instances = new Map<string, Instance>(); // by service ID
  #nodeHealth = new Map<string, CheckStatus>(); // serfHealth per node
  #index = 10;
  /** Last raft index at which something about a service name changed. */
  #serviceIndex = new Map<string, number>();
  #waiters = new Set<Waiter>();
  #failing: { status: number; body: string } | undefined;
  #requests: { path: string; query: string; at: number }[] = [];
  /** KV entries by key, and the raft index of each key's last write or delete. */
  #kv = new Map<string, { value: Buffer; createIndex: number; modifyIndex: number; flags: number }>();
  #kvIndex = new Map<string, number>();

  constructor(options: { datacenter?: string; token?: string } = {}) {
    this.datacenter = options.datacenter ?? 'dc1';
    this.token = options.token;
  }

  async start(port = 0): Promise<this> {
    const server = createServer((req, res) => this.#handle(req, res));
    server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port || this.#port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    return this;
  }

  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** Stops listening and drops every connection (an outage). `start()` reopens the same port. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const w of [...this.#waiters]) this.#waiters.delete(w);
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- test controls ----------------------------------------------------------------------

  register(input: InstanceInput): void {
    const old = this.#instances.get(input.id);
    const idx = this.#bump(input.service);
    const node = input.node ?? `node-${input.id}`;
    if (!this.#nodeHealth.has(node)) this.#nodeHealth.set(node, 'passing');
    this.#instances.set(input.id, {
      input: { ...input, node },
      checks: new Map(Object.entries(input.checks ?? { [`service:${input.id}`]: 'passing' })),
      createIndex: old?.createIndex ?? idx,
      modifyIndex: idx,
    });
    this.#wake();
  }

  deregister(id: string): void {
    const inst = this.#instances.get(id);
    if (!inst) return;
    this.#instances.delete(id);
    this.#bump(inst.input.service);
    this.#wake();
  }

  /** Sets one service check's status (the check is created if it does not exist). */
  setCheck(id: string, checkId: string, status: CheckStatus): void {
    const inst = this.#instances.get(id);
    if (!inst) throw new Error(`no instance ${id}`);
    inst.checks.set(checkId, status);
    inst.modifyIndex = this.#bump(inst.input.service);
    this.#wake();
  }

  /** Sets a node's serfHealth status: it applies to every instance on the node. */
  setNodeHealth(node: string, status: CheckStatus): void {
    this.#nodeHealth.set(node, status);
    for (const inst of this.#instances.values()) if (inst.input.node === node) this.#bump(inst.input.service);
    this.#wake();
  }

  /**
   * Makes the index of `service` go backwards (as after a snapshot restore or a leader change to
   * a lagging server). Blocked queries are answered with the lower index.
   */
  rewindIndex(service: string, to = 1): void {
    this.#index = Math.max(1, to);
    this.#serviceIndex.set(service, this.#index);
    // Wake blocked queries whatever their index, as a restarted server would.
    this.#forceWake = true;
    for (const w of [...this.#waiters]) w.check();
    this.#forceWake = false;
  }

  /** Writes a KV entry (as `consul kv put` does). */
  putKey(key: string, value: string | Buffer, flags = 0): void {
    const idx = ++this.#index;
    const old = this.#kv.get(key);
    this.#kv.set(key, {
      value: Buffer.from(value),
      createIndex: old?.createIndex ?? idx,
      modifyIndex: idx,
      flags,
    });
    this.#kvIndex.set(key, idx);
    this.#wake();
  }

  /** Deletes a KV entry (its index moves on, so blocked readers wake and see the 404). */
  deleteKey(key: string): void {
    if (!this.#kv.delete(key)) return;
    this.#kvIndex.set(key, ++this.#index);
    this.#wake();
  }

  /** Bumps the index of a service without changing what it returns (index churn). */
  touch(service: string): void {
    this.#bump(service);
    this.#wake();
  }

  /** Every request fails with this status (e.g. 500 "No cluster leader") until `fail(undefined)`. */
  fail(status: number | undefined, body = 'No cluster leader'): void {
    this.#failing = status === undefined ? undefined : { status, body };
    if (this.#failing) for (const w of [...this.#waiters]) w.check();
  }

  indexOf(service: string): number {
    return this.#serviceIndex.get(service) ?? this.#index;
  }

  /** Requests received (optionally only those for a path), since start or the last reset. */
  requestCount(path?: string): number {
    return path ? this.#requests.filter((r) => r.path === path).length : this.#requests.length;
  }

  requests(): readonly { path: string; query: string; at: number }[] {
    return this.#requests;
  }

  resetRequests(): void {
    this.#requests = [];
  }

  /** Blocked queries currently waiting. */
  get blockedQueries(): number {
    return this.#waiters.size;
  }

  // ---- internals -----------------------------------------------------------------------------

  #forceWake = false;

  #bump(service: string): number {
    this.#index++;
    this.#serviceIndex.set(service, this.#index);
    return this.#index;
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w.check();
  }

  #handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://consul');
    this.#requests.push({ path: url.pathname, query: url.search, at: Date.now() });
    if (url.pathname.startsWith('/v1/kv/')) return this.#handleKv(req, res, url);
    const m = /^\/v1\/health\/service\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'GET' || !m) return this.#text(res, 404, 'Not found');
    if (this.#failing) return this.#text(res, this.#failing.status, this.#failing.body);
    if (this.token !== undefined && req.headers['x-consul-token'] !== this.token)
      return this.#text(res, 403, 'ACL not found');
    const service = decodeURIComponent(m[1] as string);
    const q = url.searchParams;

    let passing = false;
    if (q.has('passing')) {
      const v = q.get('passing') as string;
      if (v === '') passing = true;
      else {
        const b = parseGoBool(v);
        if (b === undefined) return this.#text(res, 400, 'Invalid value for ?passing');
        passing = b;
      }
    }
    let wait = 5 * 60_000;
    if (q.has('wait')) {
      const w = parseGoDuration(q.get('wait') as string);
      if (w === undefined) return this.#text(res, 400, 'Invalid wait time');
      wait = w;
    }
    wait = Math.min(wait, 10 * 60_000);
    let minIndex = 0;
    if (q.has('index')) {
      const v = q.get('index') as string;
      if (!/^\d+$/.test(v)) return this.#text(res, 400, 'Invalid index');
      minIndex = Number(v);
    }
    const dc = q.get('dc');
    if (dc && dc !== this.datacenter) return this.#text(res, 500, `No path to datacenter`);
    let filter: ((e: Entry) => boolean) | undefined;
    if (q.has('filter')) {
      filter = compileFilter(q.get('filter') as string);
      if (!filter) return this.#text(res, 400, 'Failed to create boolean expression evaluator');
    }
    const tags = q.getAll('tag');

    const answer = () => {
      const idx = this.indexOf(service);
      let entries = this.#entries(service);
      if (tags.length) entries = entries.filter((e) => tags.every((t) => e.Service.Tags.includes(t)));
      if (passing) entries = entries.filter((e) => e.Checks.every((c) => c.Status === 'passing'));
      if (filter) entries = entries.filter(filter);
      res.writeHead(200, {
        'Content-Type': 'application/json',
        'X-Consul-Index': String(idx),
        'X-Consul-KnownLeader': 'true',
        'X-Consul-LastContact': '0',
      });
      res.end(JSON.stringify(entries));
    };

    if (minIndex === 0 || this.indexOf(service) > minIndex) return answer();
    // Blocking query: wait while index <= minIndex, up to wait + random(wait/16).
    const total = wait + Math.random() * (wait / 16);
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.#waiters.delete(waiter);
      fn();
    };
    const waiter: Waiter = {
      check: () => {
        if (this.#failing) {
          const f = this.#failing;
          finish(() => this.#text(res, f.status, f.body));
        } else if (this.#forceWake || this.indexOf(service) > minIndex) finish(answer);
      },
    };
    const timer = setTimeout(() => finish(answer), total);
    this.#waiters.add(waiter);
    res.on('close', () => finish(() => {}));
  }

  #handleKv(req: IncomingMessage, res: ServerResponse, url: URL) {
    if (this.#failing) return this.#text(res, this.#failing.status, this.#failing.body);
    if (this.token !== undefined && req.headers['x-consul-token'] !== this.token)
      return this.#text(res, 403, 'ACL not found');
    const q = url.searchParams;
    const dc = q.get('dc');
    if (dc && dc !== this.datacenter) return this.#text(res, 500, 'No path to datacenter');
    const key = decodeURIComponent(url.pathname.slice('/v1/kv/'.length));
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.putKey(key, Buffer.concat(chunks));
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('true');
      });
      return;
    }
    if (req.method === 'DELETE') {
      this.deleteKey(key);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('true');
      return;
    }
    if (req.method !== 'GET') return this.#text(res, 405, 'Method not allowed');
    let wait = 5 * 60_000;
    if (q.has('wait')) {
      const w = parseGoDuration(q.get('wait') as string);
      if (w === undefined) return this.#text(res, 400, 'Invalid wait time');
      wait = w;
    }
    wait = Math.min(wait, 10 * 60_000);
    let minIndex = 0;
    if (q.has('index')) {
      const v = q.get('index') as string;
      if (!/^\d+$/.test(v)) return this.#text(res, 400, 'Invalid index');
      minIndex = Number(v);
    }
    const indexOf = () => this.#kvIndex.get(key) ?? this.#index;
    const answer = () => {
      const e = this.#kv.get(key);
      const headers = {
        'X-Consul-Index': String(indexOf()),
        'X-Consul-KnownLeader': 'true',
        'X-Consul-LastContact': '0',
      };
      if (!e) {
        res.writeHead(404, headers);
        res.end();
        return;
      }
      res.writeHead(200, { ...headers, 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify([
          {
            LockIndex: 0,
            Key: key,
            Flags: e.flags,
            Value: e.value.length > 0 ? e.value.toString('base64') : null,
            CreateIndex: e.createIndex,
            ModifyIndex: e.modifyIndex,
          },
        ]),
      );
    };
    if (minIndex === 0 || indexOf() > minIndex) return answer();
    const total = wait + Math.random() * (wait / 16);
    let done = false;
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.#waiters.delete(waiter);
      fn();
    };
    const waiter: Waiter = {
      check: () => {
        if (this.#failing) {
          const f = this.#failing;
          finish(() => this.#text(res, f.status, f.body));
        } else if (this.#forceWake || indexOf() > minIndex) finish(answer);
      },
    };
    const timer = setTimeout(() => finish(answer), total);
    this.#waiters.add(waiter);
    res.on('close', () => finish(() => {}));
  }

  #entries(service: string): Entry[] {
    const out: Entry[] = [];
    for (const inst of this.#instances.values()) {
      const s = inst.input;
      if (s.service !== service) continue;
      const node = s.node as string;
      const nodeAddress = s.nodeAddress ?? '127.0.0.1';
      const checks: Entry['Checks'] = [
        {
          Node: node,
          CheckID: 'serfHealth',
          Name: 'Serf Health Status',
          Status: this.#nodeHealth.get(node) ?? 'passing',
          Notes: '',
          Output: 'Agent alive and reachable',
          ServiceID: '',
          ServiceName: '',
          ServiceTags: [],
        },
      ];
      for (const [id, status] of inst.checks)
        checks.push({
          Node: node,
          CheckID: id,
          Name: `Service '${s.service}' check`,
          Status: status,
          Notes: '',
          Output: '',
          ServiceID: s.id,
          ServiceName: s.service,
          ServiceTags: [...(s.tags ?? [])],
        });
      out.push({
        Node: {
          ID: `00000000-0000-0000-0000-${String(inst.createIndex).padStart(12, '0')}`,
          Node: node,
          Address: nodeAddress,
          Datacenter: this.datacenter,
          TaggedAddresses: { lan: nodeAddress, wan: nodeAddress },
          Meta: { ...(s.nodeMeta ?? {}) },
          CreateIndex: inst.createIndex,
          ModifyIndex: inst.createIndex,
        },
        Service: {
          ID: s.id,
          Service: s.service,
          Tags: [...(s.tags ?? [])],
          Address: s.address ?? '',
          TaggedAddresses: {},
          Meta: { ...(s.meta ?? {}) },
          Port: s.port,
          Weights: s.weights ?? { Passing: 1, Warning: 1 },
          EnableTagOverride: false,
          CreateIndex: inst.createIndex,
          ModifyIndex: inst.modifyIndex,
        },
        Checks: checks,
      });
    }
    return out;
  }

  #text(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(body);
  }
}

interface Entry {
  Node: {
    ID: string;
    Node: string;
    Address: string;
    Datacenter: string;
    TaggedAddresses: Record<string, string>;
    Meta: Record<string, string>;
    CreateIndex: number;
    ModifyIndex: number;
  };
  Service: {
    ID: string;
    Service: string;
    Tags: string[];
    Address: string;
    TaggedAddresses: Record<string, unknown>;
    Meta: Record<string, string>;
    Port: number;
    Weights: { Passing: number; Warning: number };
    EnableTagOverride: boolean;
    CreateIndex: number;
    ModifyIndex: number;
  };
  Checks: {
    Node: string;
    CheckID: string;
    Name: string;
    Status: CheckStatus;
    Notes: string;
    Output: string;
    ServiceID: string;
    ServiceName: string;
    ServiceTags: string[];
  }[];
}

/** Go's strconv.ParseBool. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

/** Go's time.ParseDuration (units ns us µs ms s m h; a bare "0" is allowed). */
function parseGoDuration(v: string): number | undefined {
  if (v === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  const unit: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  let total = 0;
  let pos = 0;
  if (v.length === 0) return undefined;
  while (pos < v.length) {
    re.lastIndex = pos;
    const m = re.exec(v);
    if (!m) return undefined;
    total += Number(m[1]) * (unit[m[2] as string] as number);
    pos = re.lastIndex;
  }
  return total;
}

function selectorValue(e: Entry, selector: string): unknown {
  const parts = selector.split('.');
  if (parts[0] === 'Service' && parts[1] === 'Meta' && parts.length === 3)
    return e.Service.Meta[parts[2] as string];
  if (parts[0] === 'Node' && parts[1] === 'Meta' && parts.length === 3)
    return e.Node.Meta[parts[2] as string];
  if (parts.length !== 2) return undefined;
  const allowed: Record<string, string[]> = {
    Service: ['ID', 'Service', 'Address', 'Port', 'Tags'],
    Node: ['Node', 'Address', 'Datacenter'],
  };
  if (!allowed[parts[0] as string]?.includes(parts[1] as string)) return undefined;
  return (e[parts[0] as 'Service' | 'Node'] as unknown as Record<string, unknown>)[parts[1] as string];
}

function compileFilter(expr: string): ((e: Entry) => boolean) | undefined {
  const clauses = expr.split(/\s+and\s+/);
  const preds: ((e: Entry) => boolean)[] = [];
  const SELECTOR = /^(Service|Node)\.[A-Za-z]+(\.[A-Za-z0-9_-]+)?$/;
  for (const raw of clauses) {
    const c = raw.trim();
    let m = /^([\w.-]+)\s*(==|!=)\s*"([^"]*)"$/.exec(c);
    if (m && SELECTOR.test(m[1] as string)) {
      const [, sel, op, val] = m as unknown as [string, string, string, string];
      if (!validSelector(sel)) return undefined;
      preds.push((e) => (String(selectorValue(e, sel) ?? '') === val) === (op === '=='));
      continue;
    }
    m = /^"([^"]*)"\s+(in|not in)\s+([\w.-]+)$/.exec(c);
    if (m && SELECTOR.test(m[3] as string)) {
      const [, val, op, sel] = m as unknown as [string, string, string, string];
      if (!validSelector(sel)) return undefined;
      preds.push((e) => {
        const v = selectorValue(e, sel);
        const has = Array.isArray(v)
          ? v.includes(val)
          : typeof v === 'object' && v !== null
            ? val in v
            : String(v ?? '').includes(val);
        return has === (op === 'in');
      });
      continue;
    }
    return undefined;
  }
  return (e) => preds.every((p) => p(e));
}

function validSelector(sel: string): boolean {
  const parts = sel.split('.');
  if ((parts[0] === 'Service' || parts[0] === 'Node') && parts[1] === 'Meta') return parts.length <= 3;
  const allowed: Record<string, string[]> = {
    Service: ['ID', 'Service', 'Address', 'Port', 'Tags'],
    Node: ['Node', 'Address', 'Datacenter'],
  };
  return parts.length === 2 && (allowed[parts[0] as string]?.includes(parts[1] as string) ?? false);
}
