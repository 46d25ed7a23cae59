/**
 * Consul's /v1/agent endpoints over this member: its services and checks (registered, updated,
 * put in maintenance, removed), its own health by service, itself and the members it sees.
 * Request bodies are read as Consul reads them (decode.ts); what the agent keeps beyond the
 * member's record is DeregisterCriticalServiceAfter, whose clock runs here.
 */
import type { Instance, Member } from '../registry/index.js';
import { GrapevineError, packageVersion } from '../runtime/index.js';
import { GoObject } from './decode.js';
import { compileFilter, type FilterSchema, SCHEMAS } from './filter.js';
import { agentMember, agentService, aggregatedStatus, checksOf, contentHash, DATACENTER, nodeChecksOf, nodeId, onMember, parseCheck, parseRegistration } from './consul.js';
import { type Api, type Handler, HttpError, type Reply } from './routes.js';

/** What this API keeps for an instance it registered: DeregisterCriticalServiceAfter. */
interface Deregistering {
  afterMs: number;
  timer: NodeJS.Timeout | undefined;
}

/** Consul's agent health codes: anything but passing and warning (critical, maintenance) is 503. */
const HEALTH_STATUS: Record<string, number> = { passing: 200, warning: 429, critical: 503, maintenance: 503 };

export class AgentEndpoints {
  private readonly deregistering = new Map<string, Deregistering>();
  private readonly unsubscribe: () => void;

  constructor(private readonly api: Api) {
    const gv = api.gv;
    const onService = (change: { instance: Instance }): void => {
      if (change.instance.node === gv.name) this.watchCritical(change.instance);
    };
    gv.on('service', onService);
    this.unsubscribe = () => gv.off('service', onService);
    this.define();
  }

  close(): void {
    this.unsubscribe();
    for (const d of this.deregistering.values()) clearTimeout(d.timer);
  }

  /** This agent's services: its member's own, not the external ones it spreads. */
  private own(): readonly Instance[] {
    return this.api.gv.catalog.nodeInstances(this.api.gv.name).filter(onMember);
  }

  private ownInstance(id: string): Instance {
    const i = this.own().find((x) => x.id === id);
    if (i === undefined) throw new HttpError(404, `unknown service ID: ${id}`);
    return i;
  }

  private define(): void {
    const { api } = this;
    const gv = api.gv;
    const catalogIndex = (): number => api.catalogIndex();
    const nodeIndex = (): number => api.nodeIndex();

    api.route('GET', '/v1/agent/services', (req) => {
      const keep = filterOf(req.query, SCHEMAS.agentService);
      return { body: Object.fromEntries(this.own().map((i) => [i.id, agentService(i)]).filter(([, s]) => keep(s))) };
    }, { index: catalogIndex });
    api.route('GET', '/v1/agent/service/:id', (req) => {
      const i = this.ownInstance(req.params[0] as string);
      const hash = contentHash(i);
      return { body: agentService(i, api.catalogIndex()), headers: { 'X-Consul-ContentHash': hash } };
    }, { index: catalogIndex, hash: (p) => {
      const i = this.own().find((x) => x.id === p[0]);
      return i === undefined ? '' : contentHash(i);
    } });
    api.route('GET', '/v1/agent/checks', (req) => {
      const keep = filterOf(req.query, SCHEMAS.check);
      return { body: Object.fromEntries(this.ownChecks().filter(keep).map((c) => [c.CheckID, c])) };
    }, { index: catalogIndex });
    api.route('GET', '/v1/agent/self', () => {
      const self = gv.member(gv.name) as Member;
      return {
        body: {
          Config: { Datacenter: DATACENTER, PrimaryDatacenter: DATACENTER, NodeName: gv.name, NodeID: nodeId(gv.name), Server: false, Revision: '', Version: packageVersion(), Product: 'grapevine' },
          Member: agentMember(self), Meta: self.meta, DebugConfig: {},
        },
      };
    }, { index: nodeIndex });
    api.route('GET', '/v1/agent/members', () => ({ body: gv.members().map(agentMember) }), { index: nodeIndex });
    api.route('PUT', '/v1/agent/leave', () => {
      // Answer first: leaving closes this server.
      setImmediate(() => void gv.leave());
      return { body: undefined };
    });

    // services
    api.route('PUT', '/v1/agent/service/register', async (req) => this.register(await req.body()));
    // Consul before 1.0 took GET for these writes, and Debian's python3-consul (0.7) still sends it.
    const legacyWrite = (path: string, handle: Handler): void => {
      api.route('PUT', path, handle);
      api.route('GET', path, handle, { write: true });
    };
    legacyWrite('/v1/agent/service/deregister/:id', async (req) => {
      const id = req.params[0] as string;
      if (!this.own().some((i) => i.id === id)) throw new HttpError(404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);
      this.forget(id);
      await gv.deregister(id);
      return { body: undefined };
    });
    api.route('PUT', '/v1/agent/service/maintenance/:id', (req) => {
      const id = req.params[0] as string;
      this.ownInstance(id);
      gv.maintenance(maintenanceReason(req.query), id);
      return { body: undefined };
    });
    api.route('PUT', '/v1/agent/maintenance', (req) => {
      gv.maintenance(maintenanceReason(req.query));
      return { body: undefined };
    });

    // checks
    for (const status of ['pass', 'warn', 'fail'] as const) {
      legacyWrite(`/v1/agent/check/${status}/:id`, (req) => {
        this.ttl(req.params[0] as string)[status](req.query.get('note') ?? '');
        return { body: undefined };
      });
    }
    api.route('PUT', '/v1/agent/check/update/:id', async (req) => {
      const body = GoObject.of(await req.body());
      const status = ({ passing: 'pass', warning: 'warn', critical: 'fail' } as const)[body.string('Status') ?? ''];
      if (status === undefined) throw new HttpError(400, 'Status: must be passing, warning or critical');
      this.ttl(req.params[0] as string)[status](body.string('Output') ?? '');
      return { body: undefined };
    });
    api.route('PUT', '/v1/agent/check/register', async (req) => {
      const { def, deregisterAfterMs } = parseCheck(GoObject.of(await req.body()), (m) => api.log.warn(m, {}));
      if (def.id === undefined && def.name === undefined) throw new HttpError(400, 'Name: missing check name');
      // Consul: a standalone check's ID defaults to its Name.
      const check = { ...def, id: def.id ?? (def.name as string), persist: true };
      if (check.serviceId !== undefined) this.ownInstance(check.serviceId);
      await Promise.race([gv.addCheck(check), new Promise((r) => setImmediate(r))]);
      if (check.serviceId !== undefined && deregisterAfterMs > 0) this.deregisterAfter(check.serviceId, deregisterAfterMs);
      return { body: undefined };
    });
    legacyWrite('/v1/agent/check/deregister/:id', (req) => {
      const id = req.params[0] as string;
      if (!gv.removeCheck(id)) throw new HttpError(404, `Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`);
      return { body: undefined };
    });

    // This agent's health by service, as load balancers poll it: 200 passing, 429 warning, 503 critical.
    api.route('GET', '/v1/agent/health/service/name/:name', (req) => {
      const name = req.params[0] as string;
      const infos = this.own().filter((i) => i.service === name).map((i) => this.healthInfo(i));
      if (infos.length === 0) return healthReply(req.query, 404, `ServiceName ${name} Not Found`, []);
      const worst = aggregatedStatus(infos.flatMap((x) => x.Checks));
      return healthReply(req.query, HEALTH_STATUS[worst] as number, worst, infos);
    });
    api.route('GET', '/v1/agent/health/service/id/:id', (req) => {
      const id = req.params[0] as string;
      const i = this.own().find((x) => x.id === id);
      if (i === undefined) return healthReply(req.query, 404, `ServiceId ${id} Not Found`, null);
      const info = this.healthInfo(i);
      return healthReply(req.query, HEALTH_STATUS[info.AggregatedStatus] as number, info.AggregatedStatus, info);
    });
  }

  private healthInfo(i: Instance): { AggregatedStatus: string; Service: unknown; Checks: Record<string, unknown>[] } {
    const index = this.api.catalogIndex();
    const checks = [...nodeChecksOf(this.api.gv, i.node, index), ...checksOf(this.api.gv, i, index)];
    return { AggregatedStatus: aggregatedStatus(checks), Service: agentService(i), Checks: checks };
  }

  private ownChecks(): Record<string, unknown>[] {
    const index = this.api.catalogIndex();
    const gv = this.api.gv;
    return [...nodeChecksOf(gv, gv.name, index), ...this.own().flatMap((i) => checksOf(gv, i, index))];
  }

  private ttl(checkId: string): { pass: (n: string) => void; warn: (n: string) => void; fail: (n: string) => void } {
    const c = this.api.gv.check(checkId);
    if (c === undefined) throw new HttpError(404, `Unknown check ID "${checkId}". Ensure that the check ID is passed, not the check name.`);
    if (c.type !== 'ttl') throw new HttpError(400, `CheckID "${checkId}" does not have an associated TTL`);
    return c;
  }

  private async register(body: unknown): Promise<Reply> {
    const parsed = parseRegistration(body, (m) => this.api.log.warn(m, {}));
    const id = parsed.registration.id as string;
    // Kept across the agent's restarts when it has a data directory, as Consul keeps what its API registered.
    const handle = this.api.gv.register({ ...parsed.registration, persist: true });
    // register() records the instance at once and then awaits its checks' first results; Consul
    // answers without waiting for them. Validation errors reject before the next turn.
    await Promise.race([handle, new Promise((r) => setImmediate(r))]);
    handle.catch((e: unknown) => {
      if (!(e instanceof GrapevineError)) this.api.log.warn(`registering ${id}: ${(e as Error).message}`, { id });
    });
    this.forget(id);
    if (parsed.deregisterAfterMs > 0) this.deregisterAfter(id, parsed.deregisterAfterMs);
    return { body: undefined };
  }

  private deregisterAfter(id: string, afterMs: number): void {
    const d = this.deregistering.get(id);
    if (d !== undefined && d.afterMs <= afterMs) return;
    this.forget(id);
    this.deregistering.set(id, { afterMs, timer: undefined });
    // Its 'added' event may have come before this entry existed: start the clock from its health now.
    const current = this.own().find((i) => i.id === id);
    if (current !== undefined) this.watchCritical(current);
  }

  /** Forgets what this API kept for instance `id` (re-registered or deregistered). */
  private forget(id: string): void {
    const d = this.deregistering.get(id);
    if (d === undefined) return;
    clearTimeout(d.timer);
    this.deregistering.delete(id);
  }

  /** DeregisterCriticalServiceAfter: an instance of ours critical for that long is deregistered. */
  private watchCritical(i: Instance): void {
    const d = this.deregistering.get(i.id);
    if (d === undefined) return;
    if (i.health !== 'critical') {
      clearTimeout(d.timer);
      d.timer = undefined;
      return;
    }
    if (d.timer !== undefined) return;
    d.timer = setTimeout(() => {
      this.api.log.info(`deregistering ${i.id}: critical for ${d.afterMs} ms (DeregisterCriticalServiceAfter)`, { id: i.id });
      this.forget(i.id);
      void this.api.gv.deregister(i.id);
    }, d.afterMs);
    d.timer.unref();
  }
}

/** `?enable=true|false&reason=`: the reason to enter maintenance with, or false to leave it. */
function maintenanceReason(query: URLSearchParams): string | false {
  const enable = query.get('enable');
  if (enable !== 'true' && enable !== 'false') throw new HttpError(400, 'Missing value for enable');
  return enable === 'true' ? query.get('reason') ?? '' : false;
}

/** The agent health answer: JSON, or with `?format=text` the status alone. */
function healthReply(query: URLSearchParams, status: number, text: string, body: unknown): Reply {
  if (query.get('format') === 'text') return { body: undefined, status, text: { contentType: 'text/plain; charset=utf-8', body: text } };
  return { body, status };
}

/** `?filter=` compiled for one endpoint's elements (everything passes without one). */
export function filterOf(query: URLSearchParams, schema: FilterSchema): (value: unknown) => boolean {
  const expression = query.get('filter');
  return expression === null || expression === '' ? () => true : compileFilter(expression, schema);
}

