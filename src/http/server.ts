/**
 * The HTTP API: Consul's agent, catalog, health and status endpoints over this member's catalog
 * (every read is local, so `?stale` and `?consistent` change nothing), with blocking queries.
 *
 * Indexes (X-Consul-Index, never 0, never backwards while this member runs): a service's
 * endpoints use its catalog change index; endpoints listing all services use the catalog's;
 * node endpoints add a count of membership changes. After a restart they start over, and a
 * client asking with a higher index is answered at once (Consul clients then start over too).
 *
 * Bounded: request headers and bodies have deadlines, bodies are at most 1 MiB (413), blocking
 * queries are capped (429), non-loopback binds need a token unless explicitly allowed.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Instance, Member } from '../registry/index.js';
import {
  BindError, type CheckHandle, type Extension, hostOf, type ExtensionContext, type Grapevine, GrapevineError, type HttpOptions, InvalidOptionError, type Logger, packageVersion,
  type ServiceHandle,
} from '../runtime/index.js';
import { Blocking, BlockingFull, blockingParams } from './blocking.js';
import { loadedMetrics, metricsOf } from './metrics.js';
import { STATUS_PAGE } from './ui.js';
import {
  agentMember, agentService, type CheckInfo, catalogService, consulNode, DATACENTER, liveMembers, nodeId, nodeOf, parseRegistration,
  serfHealth, serviceCheck,
} from './consul.js';

export const BODY_BYTES_MAX = 1024 * 1024;
const DEFAULT_BIND = '127.0.0.1:8500';
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** Events the status page shows. */
const EVENTS_KEPT = 100;
/** Connections allowed beyond the blocking-query cap. */
const CONNECTIONS_SPARE = 1_024;
/** Distinct catalog and health queries whose last answer is kept. */
const ANSWERS_KEPT = 256;

/** A query string without the blocking parameters, in a stable order: the cache key's tail. */
function canonicalQuery(query: URLSearchParams): string {
  return [...query].filter(([k]) => k !== 'index' && k !== 'wait').sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join('&');
}

/** An HTTP error with Consul's status and a plain-text reason. */
class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

interface Reply {
  body: unknown;
  index?: number;
  /** A reply that is not JSON (Prometheus's text format, the status page). */
  text?: { contentType: string; body: string };
}

type Handler = (req: Request) => Reply | Promise<Reply>;

interface Request {
  params: string[];
  query: URLSearchParams;
  body: () => Promise<unknown>;
  signal: AbortSignal;
}

interface Route {
  method: 'GET' | 'PUT';
  pattern: RegExp;
  write: boolean;
  /** For blocking reads: the endpoint's index given its path parameters. */
  index?: (params: string[]) => number;
  handle: Handler;
}

/** What this API registered, for the agent endpoints: check details and TTL handles. */
interface Registered {
  handle: Promise<ServiceHandle>;
  /** The handle's checks, once register() resolved (their status is live). */
  live: readonly CheckHandle[] | undefined;
  checks: CheckInfo[];
  deregisterAfterMs: number;
  timer: NodeJS.Timeout | undefined;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

function validate(value: unknown): Required<Pick<HttpOptions, 'bind' | 'readOpen' | 'allowInsecure' | 'blockingQueriesMax'>> & { token: string | undefined } {
  const o: HttpOptions = typeof value === 'string' ? { bind: value } : value === true ? {} : (value as HttpOptions);
  if (o === null || typeof o !== 'object') throw new InvalidOptionError('http', 'must be "host:port" or { bind, token, readOpen }');
  const bind = o.bind ?? DEFAULT_BIND;
  if (typeof bind !== 'string' || !/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(bind)) throw new InvalidOptionError('http.bind', `must be "host:port", got ${JSON.stringify(bind)}`);
  if (o.token !== undefined && (typeof o.token !== 'string' || o.token.length < 8)) throw new InvalidOptionError('http.token', 'must be a string of at least 8 characters');
  const host = hostOf(bind);
  if (!isLoopback(host) && o.token === undefined && o.allowInsecure !== true) {
    throw new InvalidOptionError('http.bind', `${bind} is reachable beyond this host: set http.token, or allowInsecure: true to serve it open`);
  }
  const max = o.blockingQueriesMax ?? 4_096;
  if (!Number.isInteger(max) || max < 1) throw new InvalidOptionError('http.blockingQueriesMax', 'must be a positive integer');
  return { bind, token: o.token, readOpen: o.readOpen === true, allowInsecure: o.allowInsecure === true, blockingQueriesMax: max };
}

export class HttpApi implements Extension {
  private readonly server: Server;
  private readonly routes: Route[] = [];
  private readonly blocking: Blocking;
  private readonly registered = new Map<string, Registered>();
  private memberChanges = 0;
  /** Serialized catalog and health answers by query, with the indexes they were made at. */
  private readonly answers = new Map<string, { stamp: string; json: string }>();
  /** TTL updates through this API: they can change a check's output without changing any index. */
  private checkUpdates = 0;
  /** For the status page: recent events, and when each member last changed. */
  private readonly events: { at: number; text: string }[] = [];
  private readonly changedAt = new Map<string, number>();
  private readonly unsubscribe: (() => void)[] = [];
  address = '';

  constructor(
    private readonly gv: Grapevine,
    private readonly options: ReturnType<typeof validate>,
    private readonly log: Logger,
  ) {
    this.blocking = new Blocking(options.blockingQueriesMax);
    this.server = createServer((req, res) => void this.serve(req, res));
    this.server.headersTimeout = HEADERS_TIMEOUT_MS;
    this.server.requestTimeout = REQUEST_TIMEOUT_MS;
    // Room for every blocked query plus ordinary traffic; past it the OS queue holds the rest rather than our file descriptors.
    this.server.maxConnections = options.blockingQueriesMax + CONNECTIONS_SPARE;
    const onMember = ({ type, member }: { type: string; member: Member }): void => {
      this.memberChanges++;
      this.changedAt.set(member.name, Date.now());
      this.note(`${member.name} ${type}${type === 'alive' || type === 'joined' ? ` (incarnation ${member.incarnation})` : ''}`);
      this.blocking.changed();
    };
    const onService = (change: { type: string; instance: Instance }): void => {
      const i = change.instance;
      if (i.node === gv.name) this.watchCritical(i);
      this.note(`${i.service} ${i.id} on ${i.node} ${change.type} (${i.health})`);
      this.blocking.changed();
    };
    gv.on('member', onMember);
    gv.on('service', onService);
    this.unsubscribe.push(() => gv.off('member', onMember), () => gv.off('service', onService));
    this.defineRoutes();
  }

  async listen(): Promise<void> {
    const i = this.options.bind.lastIndexOf(':');
    const host = this.options.bind.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(this.options.bind.slice(i + 1));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    }).catch((e: NodeJS.ErrnoException) => {
      throw new BindError(`cannot serve HTTP on ${this.options.bind}: ${e.message}`, e, 'http.bind');
    });
    const a = this.server.address() as { address: string; port: number };
    this.address = a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    this.log.info(`HTTP API on http://${this.address}/ (Consul-compatible /v1/)`, { http: this.address });
  }

  async close(): Promise<void> {
    for (const u of this.unsubscribe) u();
    for (const r of this.registered.values()) clearTimeout(r.timer);
    this.blocking.close();
    this.server.closeIdleConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private note(text: string): void {
    this.events.push({ at: Date.now(), text });
    if (this.events.length > EVENTS_KEPT) this.events.shift();
  }

  // ---------------------------------------------------------------- routing

  private route(method: Route['method'], path: string, handle: Handler, options: { write?: boolean; index?: Route['index'] } = {}): void {
    // ":name" captures one path segment (which may itself contain "/" only when last: Consul's keys do not, names do not).
    const pattern = new RegExp(`^${path.replace(/:[a-z_]+/g, '([^/]+)')}$`);
    this.routes.push({ method, pattern, write: options.write ?? method === 'PUT', handle, ...(options.index !== undefined ? { index: options.index } : {}) });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ac = new AbortController();
    res.once('close', () => ac.abort());
    res.once('finish', () => loadedMetrics(this.gv)?.httpRequest(req.method ?? '?', res.statusCode));
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const path = url.pathname;
      const matches = this.routes.filter((r) => r.pattern.test(path));
      if (matches.length === 0) throw new HttpError(404, `no such endpoint: ${path}`);
      const route = matches.find((r) => r.method === req.method || (r.method === 'GET' && req.method === 'HEAD'));
      if (route === undefined) {
        res.setHeader('Allow', matches.map((r) => r.method).join(', '));
        throw new HttpError(405, `method ${req.method ?? '?'} not allowed`);
      }
      this.authorize(req, route.write);
      const params = (route.pattern.exec(path) as RegExpExecArray).slice(1).map((p) => decodeURIComponent(p));
      const request: Request = { params, query: url.searchParams, body: () => readBody(req), signal: ac.signal };
      if (route.index !== undefined) {
        const { index, waitMs } = blockingParams(url.searchParams);
        const indexOf = (): number => (route.index as (p: string[]) => number)(params);
        if (index !== undefined) await this.blocking.wait(index, indexOf, waitMs, ac.signal);
        if (ac.signal.aborted) return;
        const now = indexOf();
        // Catalog and health answers depend only on the catalog and the member table, both
        // covered by the indexes in the stamp: a burst of equal queries (thousands of woken
        // watchers, or pollers) is answered from one serialization.
        const key = path.startsWith('/v1/catalog/') || path.startsWith('/v1/health/') ? `${path}?${canonicalQuery(url.searchParams)}` : undefined;
        const stamp = `${now}:${this.nodeIndex()}:${this.checkUpdates}`;
        const cached = key === undefined ? undefined : this.answers.get(key);
        if (cached !== undefined && cached.stamp === stamp) return this.sendJson(res, cached.json, now);
        const json = JSON.stringify((await route.handle(request)).body);
        if (key !== undefined) {
          if (this.answers.size >= ANSWERS_KEPT) this.answers.delete(this.answers.keys().next().value as string);
          this.answers.set(key, { stamp, json });
        }
        this.sendJson(res, json, now);
        return;
      }
      const reply = await route.handle(request);
      if (reply.text !== undefined) {
        res.writeHead(200, { 'Content-Type': reply.text.contentType });
        res.end(reply.text.body);
        return;
      }
      this.send(res, 200, reply.body, reply.index ?? (req.method === 'PUT' ? undefined : this.nodeIndex()));
    } catch (e) {
      if (res.headersSent || ac.signal.aborted) return;
      const [status, message] = e instanceof HttpError ? [e.status, e.message]
        : e instanceof BlockingFull ? [429, `too many blocking queries (${this.options.blockingQueriesMax} held); retry later`]
          : e instanceof GrapevineError ? [400, e.message]
            : [500, (e as Error).message];
      if (status === 500) this.log.error(`HTTP ${req.method ?? '?'} ${req.url ?? '?'}: ${message}`, {});
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`${message}\n`);
    }
  }

  private authorize(req: IncomingMessage, write: boolean): void {
    const token = this.options.token;
    if (token === undefined || (!write && this.options.readOpen)) return;
    const auth = req.headers.authorization;
    const given = req.headers['x-consul-token'] ?? (typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined);
    const a = Buffer.from(typeof given === 'string' ? given : '');
    const b = Buffer.from(token);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new HttpError(403, 'Permission denied: token missing or wrong');
  }

  private send(res: ServerResponse, status: number, body: unknown, index: number | undefined): void {
    this.sendJson(res, body === undefined ? '' : JSON.stringify(body), index, status);
  }

  private sendJson(res: ServerResponse, json: string, index: number | undefined, status = 200): void {
    const headers: Record<string, string> = { 'Content-Type': 'application/json', 'X-Consul-KnownLeader': 'true', 'X-Consul-LastContact': '0' };
    if (index !== undefined) headers['X-Consul-Index'] = String(index);
    res.writeHead(status, headers);
    res.end(json);
  }

  // ---------------------------------------------------------------- indexes

  private catalogIndex(): number {
    return this.gv.catalog.index + 1;
  }

  private serviceIndex(name: string): number {
    return this.gv.catalog.serviceIndex(name) + 1;
  }

  private nodeIndex(): number {
    return this.gv.catalog.index + this.memberChanges + 1;
  }

  // ---------------------------------------------------------------- endpoints

  private defineRoutes(): void {
    const gv = this.gv;
    const catalogIndex = (): number => this.catalogIndex();
    const nodeIndex = (): number => this.nodeIndex();
    const serviceIndex = (p: string[]): number => this.serviceIndex(p[0] as string);

    // agent
    this.route('GET', '/v1/agent/services', () => ({
      body: Object.fromEntries(gv.catalog.nodeInstances(gv.name).map((i) => [i.id, agentService(i)])),
    }), { index: catalogIndex });
    this.route('GET', '/v1/agent/checks', () => ({ body: Object.fromEntries(this.ownChecks().map((c) => [c.CheckID, c])) }), { index: catalogIndex });
    this.route('GET', '/v1/agent/self', () => {
      const self = gv.member(gv.name) as Member;
      return {
        body: {
          Config: { Datacenter: DATACENTER, PrimaryDatacenter: DATACENTER, NodeName: gv.name, NodeID: nodeId(gv.name), Server: false, Revision: '', Version: packageVersion(), Product: 'grapevine' },
          Member: agentMember(self), Meta: self.meta, DebugConfig: {},
        },
      };
    }, { index: nodeIndex });
    this.route('GET', '/v1/agent/members', () => ({ body: gv.members().map(agentMember) }), { index: nodeIndex });
    this.route('PUT', '/v1/agent/leave', () => {
      // Answer first: leaving closes this server.
      setImmediate(() => void gv.leave());
      return { body: undefined };
    });
    this.route('PUT', '/v1/agent/service/register', async (req) => this.register(await req.body()));
    this.route('PUT', '/v1/agent/service/deregister/:id', async (req) => {
      const id = req.params[0] as string;
      if (!gv.catalog.nodeInstances(gv.name).some((i) => i.id === id)) throw new HttpError(404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);
      this.forget(id);
      await gv.deregister(id);
      return { body: undefined };
    });
    for (const status of ['pass', 'warn', 'fail'] as const) {
      this.route('PUT', `/v1/agent/check/${status}/:id`, async (req) => {
        await this.ttlUpdate(req.params[0] as string, status, req.query.get('note') ?? '');
        return { body: undefined };
      });
    }
    this.route('PUT', '/v1/agent/check/update/:id', async (req) => {
      const body = await req.body() as { Status?: unknown; Output?: unknown } | null;
      const status = { passing: 'pass', warning: 'warn', critical: 'fail' }[String(body?.Status)] as 'pass' | 'warn' | 'fail' | undefined;
      if (status === undefined) throw new HttpError(400, 'Status: must be passing, warning or critical');
      await this.ttlUpdate(req.params[0] as string, status, typeof body?.Output === 'string' ? body.Output : '');
      return { body: undefined };
    });

    // catalog
    this.route('GET', '/v1/catalog/datacenters', () => ({ body: [DATACENTER] }), { index: nodeIndex });
    this.route('GET', '/v1/catalog/services', () => {
      const out: Record<string, string[]> = {};
      for (const name of gv.services().sort()) out[name] = [...new Set(gv.lookup(name).flatMap((i) => i.tags))];
      return { body: out };
    }, { index: catalogIndex });
    this.route('GET', '/v1/catalog/service/:name', (req) => {
      const members = liveMembers(gv);
      const index = this.serviceIndex(req.params[0] as string);
      return { body: this.instances(req).flatMap((i) => {
        const node = nodeOf(i, members);
        return node === undefined ? [] : [catalogService(i, node, index)];
      }) };
    }, { index: serviceIndex });
    this.route('GET', '/v1/catalog/nodes', () => {
      const index = this.nodeIndex();
      return { body: [...liveMembers(gv).values()].map((m) => consulNode(m, index)) };
    }, { index: nodeIndex });
    this.route('GET', '/v1/catalog/node/:node', (req) => {
      const m = liveMembers(gv).get(req.params[0] as string);
      if (m === undefined) return { body: null };
      const index = this.nodeIndex();
      return { body: { Node: consulNode(m, index), Services: Object.fromEntries(gv.catalog.nodeInstances(m.name).map((i) => [i.id, agentService(i)])) } };
    }, { index: nodeIndex });

    // health
    this.route('GET', '/v1/health/service/:name', (req) => {
      const members = liveMembers(gv);
      const index = this.serviceIndex(req.params[0] as string);
      const passing = req.query.has('passing') && req.query.get('passing') !== 'false';
      return {
        body: this.instances(req).flatMap((i) => {
          const node = nodeOf(i, members);
          if (node === undefined || (passing && i.health !== 'passing')) return [];
          return [{
            Node: consulNode(node, index),
            Service: { ...agentService(i), CreateIndex: index, ModifyIndex: index },
            // An imported instance has no member, so no serf check: its health is its entry's.
            Checks: [...(i.source === 'gossip' ? [serfHealth(i.node, index)] : []), ...this.checksOf(i, index)],
          }];
        }),
      };
    }, { index: serviceIndex });
    this.route('GET', '/v1/health/checks/:name', (req) => {
      const index = this.serviceIndex(req.params[0] as string);
      return { body: this.instances(req).flatMap((i) => this.checksOf(i, index)) };
    }, { index: serviceIndex });
    this.route('GET', '/v1/health/node/:node', (req) => {
      const node = req.params[0] as string;
      if (!liveMembers(gv).has(node)) return { body: [] };
      const index = this.nodeIndex();
      return { body: [serfHealth(node, index), ...gv.catalog.nodeInstances(node).flatMap((i) => this.checksOf(i, index))] };
    }, { index: nodeIndex });
    this.route('GET', '/v1/health/state/:state', (req) => {
      const state = req.params[0] as string;
      if (!['any', 'passing', 'warning', 'critical'].includes(state)) throw new HttpError(400, `Invalid state: ${state}; one of any, passing, warning, critical`);
      const index = this.nodeIndex();
      const all = [...liveMembers(gv).keys()].flatMap((node) => [serfHealth(node, index), ...gv.catalog.nodeInstances(node).flatMap((i) => this.checksOf(i, index))]);
      return { body: state === 'any' ? all : all.filter((c) => c.Status === state) };
    }, { index: nodeIndex });

    // Prometheus: grapevine's metrics, and every instance as an HTTP service-discovery target.
    const prometheus = async (): Promise<Reply> => {
      const m = await metricsOf(gv);
      return { body: undefined, text: { contentType: m.registry.contentType, body: await m.registry.metrics() } };
    };
    this.route('GET', '/metrics', prometheus);
    this.route('GET', '/v1/agent/metrics', async (req) => {
      if (req.query.get('format') !== 'prometheus') throw new HttpError(400, 'only format=prometheus is served');
      return prometheus();
    });
    this.route('GET', '/v1/prometheus/sd', () => ({ body: gv.services().sort().flatMap((s) => gv.lookup(s).map(sdTarget)) }), { index: catalogIndex });

    // The status page, and the state it long-polls.
    this.route('GET', '/ui', () => ({ body: undefined, text: { contentType: 'text/html; charset=utf-8', body: STATUS_PAGE } }));
    this.route('GET', '/ui/', () => ({ body: undefined, text: { contentType: 'text/html; charset=utf-8', body: STATUS_PAGE } }));
    this.route('GET', '/v1/grapevine/state', () => ({
      body: {
        self: { name: gv.name, address: gv.address, healthScore: gv.healthScore, version: packageVersion() },
        members: gv.members().sort((x, y) => x.name.localeCompare(y.name)).map((m) => ({
          name: m.name, addr: m.addr, state: m.state, incarnation: m.incarnation, changedAt: this.changedAt.get(m.name) ?? null,
        })),
        services: gv.services().sort().map((name) => ({
          name, instances: gv.lookup(name).map((i) => ({ id: i.id, node: i.node, hostPort: i.hostPort, health: i.health, tags: i.tags, suspect: i.suspect })),
        })),
        events: this.events,
      },
    }), { index: nodeIndex });

    // status: there is no leader; each agent names itself, so clients that check for one keep working.
    this.route('GET', '/v1/status/leader', () => ({ body: gv.address }), { index: nodeIndex });
    this.route('GET', '/v1/status/peers', () => ({ body: [...liveMembers(gv).values()].map((m) => m.addr) }), { index: nodeIndex });
  }

  /** Instances of the path's service, filtered by every `?tag=`. */
  private instances(req: Request): readonly Instance[] {
    const tags = req.query.getAll('tag');
    return this.gv.lookup(req.params[0] as string, tags.length > 0 ? { tags } : undefined);
  }

  /** An instance's checks: the ones registered through this API in detail, else one standing for its health. */
  private checksOf(i: Instance, index: number): Record<string, unknown>[] {
    const r = i.node === this.gv.name ? this.registered.get(i.id) : undefined;
    if (r === undefined || r.checks.length === 0) return [serviceCheck(i, index)];
    return r.checks.map((c, n) => serviceCheck(i, index, c, r.live?.[n]?.status ?? i.health));
  }

  private ownChecks(): Record<string, unknown>[] {
    const index = this.catalogIndex();
    return this.gv.catalog.nodeInstances(this.gv.name).flatMap((i) => this.checksOf(i, index));
  }

  // ---------------------------------------------------------------- agent writes

  private async register(body: unknown): Promise<Reply> {
    const parsed = parseRegistration(body, (m) => this.log.warn(m, {}));
    const id = parsed.registration.id as string;
    const handle = this.gv.register(parsed.registration);
    // register() records the instance at once and then awaits its checks' first results; Consul
    // answers without waiting for them. Validation errors reject before the next turn.
    await Promise.race([handle, new Promise((r) => setImmediate(r))]);
    this.forget(id);
    const deregisterAfter = parsed.deregisterAfterMs.filter((ms) => ms > 0);
    const entry: Registered = {
      handle, live: undefined, checks: parsed.checks, deregisterAfterMs: deregisterAfter.length > 0 ? Math.min(...deregisterAfter) : 0, timer: undefined,
    };
    this.registered.set(id, entry);
    // Its 'added' event came before this entry existed: start the critical clock from its health now.
    const current = this.gv.catalog.nodeInstances(this.gv.name).find((i) => i.id === id);
    if (current !== undefined) this.watchCritical(current);
    handle.then((h) => {
      entry.live = h.checks;
    }, () => this.forget(id));
    return { body: undefined };
  }

  /** Forgets what this API kept for instance `id` (re-registered or deregistered). */
  private forget(id: string): void {
    const r = this.registered.get(id);
    if (r === undefined) return;
    clearTimeout(r.timer);
    this.registered.delete(id);
  }

  private async ttlUpdate(checkId: string, status: 'pass' | 'warn' | 'fail', note: string): Promise<void> {
    for (const r of this.registered.values()) {
      const n = r.checks.findIndex((c) => c.id === checkId);
      if (n < 0) continue;
      const info = r.checks[n] as CheckInfo;
      if (info.type !== 'ttl') throw new HttpError(400, `CheckID "${checkId}" does not have an associated TTL`);
      const handle = await r.handle;
      handle.checks[n]?.[status]();
      info.output = note;
      this.checkUpdates++;
      return;
    }
    throw new HttpError(404, `Unknown check ID "${checkId}". Ensure that the check ID is passed, not the check name.`);
  }

  /** DeregisterCriticalServiceAfter: an instance of ours critical for that long is deregistered. */
  private watchCritical(i: Instance): void {
    const r = this.registered.get(i.id);
    if (r === undefined || r.deregisterAfterMs === 0) return;
    if (i.health !== 'critical') {
      clearTimeout(r.timer);
      r.timer = undefined;
      return;
    }
    if (r.timer !== undefined) return;
    r.timer = setTimeout(() => {
      this.log.info(`deregistering ${i.id}: critical for ${r.deregisterAfterMs} ms (DeregisterCriticalServiceAfter)`, { id: i.id });
      this.forget(i.id);
      void this.gv.deregister(i.id);
    }, r.deregisterAfterMs);
    r.timer.unref();
  }
}

/** Prometheus http_sd: one target group per instance, labelled with its service, node, tags, health and metadata. */
function sdTarget(i: Instance): { targets: string[]; labels: Record<string, string> } {
  const labels: Record<string, string> = {
    __meta_grapevine_service: i.service, __meta_grapevine_node: i.node, __meta_grapevine_id: i.id,
    __meta_grapevine_tags: i.tags.length === 0 ? '' : `,${i.tags.join(',')},`, __meta_grapevine_health: i.health,
  };
  for (const [k, v] of Object.entries(i.meta)) labels[`__meta_grapevine_meta_${k.replace(/[^a-zA-Z0-9_]/g, '_')}`] = v;
  return { targets: [i.hostPort], labels };
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > BODY_BYTES_MAX) {
      reject(new HttpError(413, `request body over ${BODY_BYTES_MAX} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > BODY_BYTES_MAX) {
        reject(new HttpError(413, `request body over ${BODY_BYTES_MAX} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(null);
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new HttpError(400, `Request decode failed: ${(e as Error).message}`));
      }
    });
    req.once('error', reject);
  });
}

/** The ExtensionStarter for start() option `http`. */
export async function serveHttp(gv: Grapevine, value: unknown, context: ExtensionContext): Promise<HttpApi> {
  const api = new HttpApi(gv, validate(value), context.logger);
  await api.listen();
  return api;
}
