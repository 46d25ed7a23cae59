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
import { createServer as createHttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Instance, Member } from '../registry/index.js';
import {
  BindError, type Extension, type ExtensionContext, type Grapevine, GrapevineError, type HttpOptions, type HttpTls, hostOf, InvalidOptionError, type Logger, packageVersion,
} from '../runtime/index.js';
import { AgentEndpoints } from './agent.js';
import { Blocking, BlockingFull, blockingParams } from './blocking.js';
import { catalogEndpoints } from './catalog.js';
import { eventEndpoints } from './events.js';
import { kvEndpoints } from './kv.js';
import { operatorEndpoints } from './operator.js';
import { DATACENTER, liveMembers } from './consul.js';
import { loadedMetrics, metricsOf } from './metrics.js';
import { type Api, type Handler, HttpError, type Method, type Reply, type Request, type RouteOptions } from './routes.js';
import { STATUS_PAGE } from './ui.js';

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

/**
 * An answer without the indexes it carries (every entry's Create/ModifyIndex is the endpoint's
 * index): what a watcher would see change. Worked out once per answer: thousands of watchers
 * woken together share one.
 */
function content(a: Answer): string {
  a.content ??= a.json.replace(/"(Create|Modify)Index":\d+/g, '');
  return a.content;
}

/** A read's answer, serialized, with the index it was made at. */
interface Answer {
  json: string;
  /** A value served as it is (the key-value store's ?raw). */
  raw?: Uint8Array;
  index: number;
  status: number;
  headers: Record<string, string>;
  content?: string;
}

interface Route extends RouteOptions {
  method: Method;
  path: string;
  /** Path parameters it captures. */
  params: number;
  pattern: RegExp;
  write: boolean;
  handle: Handler;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

type ValidTls = { cert: string; key: string; ca: string | undefined; requireClientCert: boolean };
type ValidHttp = Required<Pick<HttpOptions, 'bind' | 'readOpen' | 'allowInsecure' | 'blockingQueriesMax'>> & { token: string | undefined; tls: ValidTls | undefined };

function validate(value: unknown): ValidHttp {
  const o: HttpOptions = typeof value === 'string' ? { bind: value } : value === true ? {} : (value as HttpOptions);
  if (o === null || typeof o !== 'object') throw new InvalidOptionError('http', 'must be "host:port" or { bind, token, readOpen }');
  const bind = o.bind ?? DEFAULT_BIND;
  if (typeof bind !== 'string' || !/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(bind)) throw new InvalidOptionError('http.bind', `must be "host:port", got ${JSON.stringify(bind)}`);
  if (o.token !== undefined && (typeof o.token !== 'string' || o.token.length < 8)) throw new InvalidOptionError('http.token', 'must be a string of at least 8 characters');
  const tls = o.tls === undefined ? undefined : validateTls(o.tls);
  const host = hostOf(bind);
  // A required client certificate authenticates as a token would.
  if (!isLoopback(host) && o.token === undefined && tls?.requireClientCert !== true && o.allowInsecure !== true) {
    throw new InvalidOptionError('http.bind', `${bind} is reachable beyond this host: set http.token (with http.tls, so it does not travel in clear), require client certificates, or allowInsecure: true to serve it open`);
  }
  const max = o.blockingQueriesMax ?? 4_096;
  if (!Number.isInteger(max) || max < 1) throw new InvalidOptionError('http.blockingQueriesMax', 'must be a positive integer');
  return { bind, token: o.token, readOpen: o.readOpen === true, allowInsecure: o.allowInsecure === true, blockingQueriesMax: max, tls };
}

/** PEM certificate and key (and a CA for client certificates), tried in a TLS context now so a bad one fails at start, naming what. */
function validateTls(tls: HttpTls): ValidTls {
  if (tls === null || typeof tls !== 'object') throw new InvalidOptionError('http.tls', 'must be { cert, key, ca?, requireClientCert? }');
  const pem = (v: unknown, field: string): string => {
    if (typeof v === 'string') return v;
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    throw new InvalidOptionError(`http.tls.${field}`, 'must be PEM text (a string or bytes)');
  };
  const valid: ValidTls = {
    cert: pem(tls.cert, 'cert'), key: pem(tls.key, 'key'), ca: tls.ca === undefined ? undefined : pem(tls.ca, 'ca'), requireClientCert: tls.requireClientCert === true,
  };
  if (valid.requireClientCert && valid.ca === undefined) throw new InvalidOptionError('http.tls.ca', 'is needed to verify client certificates');
  try {
    createSecureContext({ cert: valid.cert, key: valid.key, ...(valid.ca !== undefined ? { ca: valid.ca } : {}) });
  } catch (e) {
    throw new InvalidOptionError('http.tls', `certificate, key or CA not usable: ${(e as Error).message}`);
  }
  return valid;
}

export class HttpApi implements Extension, Api {
  private readonly server: Server;
  private readonly routes: Route[] = [];
  private readonly blocking: Blocking;
  private readonly agent: AgentEndpoints;
  private memberChanges = 0;
  /** Catalog and health answers by query, with the indexes they were made at. */
  private readonly answers = new Map<string, { stamp: string; answer: Answer }>();
  /** For the status page: recent events, and when each member last changed. */
  private readonly events: { at: number; text: string }[] = [];
  private readonly changedAt = new Map<string, number>();
  private readonly unsubscribe: (() => void)[] = [];
  address = '';

  get tokenRequired(): boolean {
    return this.options.token !== undefined;
  }

  wake(): void {
    this.blocking.changed();
  }

  onClose(fn: () => void): void {
    this.unsubscribe.push(fn);
  }

  constructor(
    readonly gv: Grapevine,
    private readonly options: ValidHttp,
    readonly log: Logger,
  ) {
    this.blocking = new Blocking(options.blockingQueriesMax);
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.serve(req, res);
    const tls = options.tls;
    this.server = tls === undefined ? createServer(handler) : createHttpsServer({
      cert: tls.cert, key: tls.key, ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
      requestCert: tls.requireClientCert, rejectUnauthorized: tls.requireClientCert,
    }, handler);
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
      this.note(`${i.service} ${i.id} on ${i.node} ${change.type} (${i.health})`);
      this.blocking.changed();
    };
    gv.on('member', onMember);
    gv.on('service', onService);
    this.unsubscribe.push(() => gv.off('member', onMember), () => gv.off('service', onService));
    this.agent = new AgentEndpoints(this);
    catalogEndpoints(this);
    eventEndpoints(this);
    operatorEndpoints(this);
    kvEndpoints(this);
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
    this.log.info(`HTTP API on ${this.options.tls === undefined ? 'http' : 'https'}://${this.address}/ (Consul-compatible /v1/, status page /ui/, metrics /metrics)`, { http: this.address });
  }

  async close(): Promise<void> {
    for (const u of this.unsubscribe) u();
    this.agent.close();
    this.blocking.close();
    this.server.closeIdleConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private note(text: string): void {
    this.events.push({ at: Date.now(), text });
    if (this.events.length > EVENTS_KEPT) this.events.shift();
  }

  // ---------------------------------------------------------------- routing

  route(method: Method, path: string, handle: Handler, options: RouteOptions = {}): void {
    // ":name" captures one path segment (Consul's service and node names hold no "/"), "*" the rest of the path.
    const pattern = new RegExp(`^${path.replace(/:[a-z_]+/g, '([^/]+)').replace('*', '(.*)')}$`);
    this.routes.push({ ...options, method, path, pattern, params: path.split(/[:*]/).length - 1, write: options.write ?? method !== 'GET', handle });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ac = new AbortController();
    res.once('close', () => ac.abort());
    const started = performance.now();
    // The route's template ("/v1/health/service/:name"), not the path: one series per endpoint.
    let template = 'unknown';
    res.once('finish', () => loadedMetrics(this.gv)?.httpRequest(req.method ?? '?', template, res.statusCode, (performance.now() - started) / 1_000));
    let query = new URLSearchParams();
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      query = url.searchParams;
      const path = url.pathname;
      const all = this.routes.filter((r) => r.pattern.test(path));
      // The most specific routes win: /v1/agent/service/register over /v1/agent/service/:id.
      const fewest = Math.min(...all.map((r) => r.params));
      const matches = all.filter((r) => r.params === fewest);
      if (matches.length === 0) throw new HttpError(404, `no such endpoint: ${path}`);
      const route = matches.find((r) => r.method === req.method || (r.method === 'GET' && req.method === 'HEAD'));
      if (route === undefined) {
        res.setHeader('Allow', matches.map((r) => r.method).join(', '));
        throw new HttpError(405, `method ${req.method ?? '?'} not allowed`);
      }
      template = route.path;
      if (route.open !== true) this.authorize(req, route.write, query);
      checkScope(query);
      const params = (route.pattern.exec(path) as RegExpExecArray).slice(1).map((p) => decodeURIComponent(p));
      const request: Request = { params, query, body: () => readBody(req), raw: () => readRaw(req), signal: ac.signal, remote: req.socket.remoteAddress ?? '' };
      if (route.index !== undefined) {
        const answer = (): Promise<Answer> => this.answer(route, request, path);
        await this.block(route, params, query, answer, ac.signal);
        if (ac.signal.aborted) return;
        const a = await answer();
        if (a.raw !== undefined) {
          res.writeHead(a.status, { ...this.consulHeaders(a.index, query), ...a.headers, 'Content-Type': 'application/octet-stream' });
          res.end(a.raw);
        } else this.sendJson(res, a.status, a.json, a.index, query, a.headers);
        return;
      }
      const reply = await route.handle(request);
      if (reply.text !== undefined) {
        res.writeHead(reply.status ?? 200, { ...this.consulHeaders(reply.index ?? this.nodeIndex(), query), ...reply.headers, 'Content-Type': reply.text.contentType });
        res.end(reply.text.body);
        return;
      }
      this.sendJson(res, reply.status ?? 200, reply.body === undefined ? '' : JSON.stringify(reply.body), reply.index ?? this.nodeIndex(), query, reply.headers);
    } catch (e) {
      if (res.headersSent || ac.signal.aborted) return;
      const [status, message] = e instanceof HttpError ? [e.status, e.message]
        : e instanceof BlockingFull ? [429, `too many blocking queries (${this.options.blockingQueriesMax} held); retry later`]
          : e instanceof GrapevineError ? [400, e.message]
            : [500, (e as Error).message];
      if (status === 500) this.log.error(`HTTP ${req.method ?? '?'} ${(req.url ?? '?').replace(/([?&]token=)[^&]*/, '$1redacted')}: ${message}`, {});
      // Consul's headers on errors too: clients read X-Consul-Index off a 404 (python-consul's kv.get).
      res.writeHead(status, { ...this.consulHeaders(this.nodeIndex(), query), 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`${message}\n`);
    }
  }

  /** A blocking read: waits past `?index=`, or while `?hash=` still matches the answer's content hash. */
  /**
   * A blocking read: waits past `?index=` until the answer itself changes (a suspicion marks an
   * instance, which no answer shows: a watcher woken for it would only ask again), or while
   * `?hash=` still matches the answer's content hash.
   */
  private async block(route: Route, params: string[], query: URLSearchParams, answer: () => Promise<Answer>, signal: AbortSignal): Promise<void> {
    const { index, waitMs } = blockingParams(query);
    const indexOf = (): number => (route.index as NonNullable<RouteOptions['index']>)(params, query);
    const until = Date.now() + waitMs;
    const hash = query.get('hash');
    if (route.hash !== undefined && hash !== null && hash !== '') {
      while (!signal.aborted && route.hash(params) === hash && Date.now() < until) await this.blocking.wait(indexOf(), indexOf, until - Date.now(), signal);
      return;
    }
    // An index other than the current one (older, or from before a restart) is answered at once.
    if (index === undefined || index !== indexOf()) return;
    if (route.exact === true) {
      await this.blocking.wait(index, indexOf, until - Date.now(), signal);
      return;
    }
    const before = content(await answer());
    while (!signal.aborted && Date.now() < until) {
      if (!(await this.blocking.wait(indexOf(), indexOf, until - Date.now(), signal))) return;
      if (content(await answer()) !== before) return;
    }
  }

  /**
   * A read's answer now. Catalog and health answers depend only on the catalog and the member
   * table, both covered by the indexes in the stamp: a burst of equal queries (thousands of woken
   * watchers, or pollers) is answered from one serialization.
   */
  private async answer(route: Route, request: Request, path: string): Promise<Answer> {
    const index = (route.index as NonNullable<RouteOptions['index']>)(request.params, request.query);
    const key = path.startsWith('/v1/catalog/') || path.startsWith('/v1/health/') ? `${path}?${canonicalQuery(request.query)}` : undefined;
    const stamp = `${index}:${this.nodeIndex()}`;
    const cached = key === undefined ? undefined : this.answers.get(key);
    if (cached !== undefined && cached.stamp === stamp) return cached.answer;
    const reply = await route.handle(request);
    const answer: Answer = {
      json: reply.json ?? (reply.body === undefined ? '' : JSON.stringify(reply.body)), index, status: reply.status ?? 200, headers: reply.headers ?? {},
      ...(reply.raw !== undefined ? { raw: reply.raw } : {}),
    };
    if (key !== undefined && answer.status === 200) {
      if (this.answers.size >= ANSWERS_KEPT) this.answers.delete(this.answers.keys().next().value as string);
      this.answers.set(key, { stamp, answer });
    }
    return answer;
  }

  /**
   * Consul's answer headers. There is no leader to lose, so one is always known and was just
   * contacted; every read is this member's own memory, which is what Consul calls stale.
   */
  private consulHeaders(index: number, query: URLSearchParams): Record<string, string> {
    return {
      'X-Consul-Index': String(index), 'X-Consul-KnownLeader': 'true', 'X-Consul-LastContact': '0', 'X-Consul-Effective-Consistency': 'stale',
      'X-Consul-Default-ACL-Policy': this.options.token === undefined ? 'allow' : 'deny',
      ...(query.has('cached') ? { 'X-Cache': 'HIT', Age: '0' } : {}),
    };
  }

  private authorize(req: IncomingMessage, write: boolean, query: URLSearchParams): void {
    const token = this.options.token;
    if (token === undefined || (!write && this.options.readOpen)) return;
    const auth = req.headers.authorization;
    // Consul's three ways: the header, a bearer token, and ?token= (python-consul sends that one).
    const given = req.headers['x-consul-token'] ?? (typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : undefined) ?? query.get('token') ?? undefined;
    const a = Buffer.from(typeof given === 'string' ? given : '');
    const b = Buffer.from(token);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new HttpError(403, 'Permission denied: token missing or wrong');
  }

  private sendJson(res: ServerResponse, status: number, json: string, index: number, query: URLSearchParams, headers: Record<string, string> = {}): void {
    res.writeHead(status, { ...this.consulHeaders(index, query), ...headers, 'Content-Type': 'application/json' });
    res.end(json);
  }

  // ---------------------------------------------------------------- indexes

  catalogIndex(): number {
    return this.gv.catalog.index + 1;
  }

  serviceIndex(name: string): number {
    return this.gv.catalog.serviceIndex(name) + 1;
  }

  nodeIndex(): number {
    return this.gv.catalog.index + this.memberChanges + 1;
  }

  // ---------------------------------------------------------------- endpoints

  private defineRoutes(): void {
    const gv = this.gv;
    const catalogIndex = (): number => this.catalogIndex();
    const nodeIndex = (): number => this.nodeIndex();

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
    // The root is where a browser lands first: the status page.
    this.route('GET', '/', () => ({ body: undefined, status: 302, headers: { Location: '/ui/' }, text: { contentType: 'text/plain; charset=utf-8', body: 'Found: /ui/\n' } }));
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

    for (const [path, why] of NOT_SERVED) {
      const answer = (): Reply => {
        // Short: the consul npm client shows a body only under 80 characters.
        throw new HttpError(501, `${path.replace('/*', '/')}: ${why}`);
      };
      for (const method of ['GET', 'PUT', 'DELETE'] as const) this.route(method, path, answer, { write: false });
    }

    // status: there is no leader. Clients that want one (and compare it across agents) get the
    // same answer from every member that sees the same members: the live member first by name.
    // Open without a token, as Consul's (ACL: none): liveness and readiness probes ask them.
    this.route('GET', '/v1/status/leader', () => ({ body: [...liveMembers(gv).values()].sort((x, y) => (x.name < y.name ? -1 : 1))[0]?.addr ?? '' }), { index: nodeIndex, open: true });
    this.route('GET', '/v1/status/peers', () => ({ body: [...liveMembers(gv).values()].sort((x, y) => (x.name < y.name ? -1 : 1)).map((m) => m.addr) }), { index: nodeIndex, open: true });
  }
}

/**
 * `?dc=`, `?ns=` and `?partition=` as Consul OSS answers them: one datacenter, and namespaces
 * and partitions are Enterprise features (only "default" exists).
 */
function checkScope(query: URLSearchParams): void {
  const dc = query.get('dc');
  if (dc !== null && dc !== '' && dc !== DATACENTER) throw new HttpError(500, 'No path to datacenter');
  for (const [param, what] of [['ns', 'Namespaces'], ['partition', 'Partitions']] as const) {
    const v = query.get(param);
    if (v !== null && v !== '' && v !== 'default') throw new HttpError(400, `Invalid query parameter: "${param}" - ${what} are a Consul Enterprise feature`);
  }
}

/**
 * Consul endpoints this member does not serve, each with why: answered 501 rather than 404, so a
 * client cannot take the absence for "no such key" or "no instances" (the Go client's KV.Get
 * would). docs/consul-compatibility.md lists every endpoint.
 */
const NOT_SERVED: readonly [string, string][] = [
  ['/v1/coordinate/*', 'network coordinates are not served yet'],
  ['/v1/txn', 'transactions need consensus, and grapevine has no servers'],
  ['/v1/session/*', 'sessions and locks need consensus, and grapevine has no servers'],
  ['/v1/query', 'prepared queries are not served'],
  ['/v1/query/*', 'prepared queries are not served'],
  ['/v1/acl/*', 'ACLs are not served: the HTTP API takes one token (http.token)'],
  ['/v1/connect/*', 'Consul Connect is not supported'],
  ['/v1/config/*', 'configuration entries (Connect) are not supported'],
  ['/v1/operator/*', 'only /v1/operator/keyring is served'],
  ['/v1/snapshot', 'there is no server state to snapshot'],
  ['/v1/agent/join/*', 'joining through the HTTP API is not served yet: give the member seeds'],
  ['/v1/agent/force-leave/*', 'force-leave is not served yet'],
  ['/v1/agent/reload', 'the agent has no configuration files to reload'],
  ['/v1/agent/token/*', 'ACL tokens are not served'],
  ['/v1/agent/connect/*', 'Consul Connect is not supported'],
];

/** Prometheus http_sd: one target group per instance, labelled with its service, node, tags, health and metadata. */
function sdTarget(i: Instance): { targets: string[]; labels: Record<string, string> } {
  const labels: Record<string, string> = {
    __meta_grapevine_service: i.service, __meta_grapevine_node: i.node, __meta_grapevine_id: i.id,
    __meta_grapevine_tags: i.tags.length === 0 ? '' : `,${i.tags.join(',')},`, __meta_grapevine_health: i.health,
  };
  for (const [k, v] of Object.entries(i.meta)) labels[`__meta_grapevine_meta_${k.replace(/[^a-zA-Z0-9_]/g, '_')}`] = v;
  return { targets: [i.hostPort], labels };
}

/** The request body, whole, refused over BODY_BYTES_MAX (413). */
function readRaw(req: IncomingMessage): Promise<Buffer> {
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
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** The request body as JSON (null when empty). */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const text = (await readRaw(req)).toString('utf8');
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `Request decode failed: ${(e as Error).message}`);
  }
}

/** The ExtensionStarter for start() option `http`. */
export const serveHttp = Object.assign(startHttp, { check: (value: unknown): void => void validate(value) });

async function startHttp(gv: Grapevine, value: unknown, context: ExtensionContext): Promise<HttpApi> {
  const api = new HttpApi(gv, validate(value), context.logger);
  await api.listen();
  // Found without loading it: a member serving HTTP but no metrics pays nothing for prom-client.
  try {
    import.meta.resolve('prom-client');
  } catch {
    context.logger.warn(`/metrics on ${api.address} answers 400: prom-client, which grapevine-registry depends on, cannot be found (reinstall, or npm install prom-client)`, {});
  }
  return api;
}
