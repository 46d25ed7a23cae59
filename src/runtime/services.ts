/**
 * This member's own service instances and the health checks that keep them current. Each check's
 * status, output and notes go into the member's record, so every member answers the same checks.
 * A status change is written at once; output that changes while the status holds (a body with a
 * timestamp, a TTL note) is written at most once per CHECK_OUTPUT_REFRESH_MS, as Consul's agent
 * syncs it every check_update_interval, so a chatty check cannot flood the cluster with records.
 */
import { InvalidOptionError, OversizedError } from '../core/errors.js';
import type { Catalog } from '../registry/catalog.js';
import { type CheckRecord, type Health, type ServiceDefinition, toServiceRecord, truncateUtf8, worstHealth } from '../registry/record.js';
import { type CheckDefinition, HealthCheck } from './health-check.js';
import type { Logger } from './log.js';

/**
 * A service to register, optionally with health checks that keep its health current: `check`,
 * `checks`, or both. With several, the instance's health is the worst of them.
 */
export type Registration = ServiceDefinition & {
  check?: CheckDefinition;
  checks?: readonly CheckDefinition[];
  /** Kept across restarts by a member with a data directory (the agent's HTTP API sets it); not for function checks. */
  persist?: boolean;
};

/** One of an instance's checks: what it says, and TTL heartbeats (`note` becomes its output). */
export interface CheckHandle {
  readonly id: string;
  readonly name: string;
  /** "http", "tcp", "ttl" or "function". */
  readonly type: string;
  readonly status: Health;
  readonly output: string;
  readonly notes: string;
  pass(note?: string): void;
  warn(note?: string): void;
  fail(note?: string): void;
}

/** What register() returns: the instance id, TTL heartbeats, and a way to deregister. */
export interface ServiceHandle {
  readonly id: string;
  /** The instance's current health (from its check, or as registered). */
  readonly health: Health;
  /** Its checks, in registration order (`check` first, then `checks`). */
  readonly checks: readonly CheckHandle[];
  /** TTL checks: report in (to every TTL check of the instance). */
  pass(note?: string): void;
  warn(note?: string): void;
  fail(note?: string): void;
  deregister(): Promise<boolean>;
}

/** Checks one instance (or the node) may have (the record's limit). */
const CHECKS_MAX = 16;
/** Output-only changes are spread at most this often per instance (Consul's check_update_interval). */
export const CHECK_OUTPUT_REFRESH_MS = 300_000;
/** When full outputs would make the record too large, they travel cut to this. */
const OUTPUT_BYTES_SHORT = 256;
/** The node's own checks: maintenance, and checks registered for no service. */
const NODE = '';

/** A check added to a running member (Consul's /v1/agent/check/register): of one instance, or of the node. */
export type StandaloneCheck = CheckDefinition & { serviceId?: string; persist?: boolean };

/** The registrations and checks made with `persist: true`, as given (ids resolved), for a data directory to keep. */
export interface Persisted {
  services: Registration[];
  checks: StandaloneCheck[];
}

/** What a data directory reads: the persisted registrations now, and a call after each change to them. */
export interface RegistrationJournal {
  list(): Persisted;
  onChange(listener: () => void): () => void;
}

interface Own {
  /** Health as registered, for an instance without checks. */
  base: Health;
  checks: Check[];
  maintenance: CheckRecord | undefined;
  /** A pending output-only write. */
  timer: NodeJS.Timeout | undefined;
  /** When outputs were last written. */
  writtenAt: number;
}

interface Check extends CheckHandle {
  readonly run: HealthCheck;
}

export class OwnServices implements RegistrationJournal {
  private readonly own = new Map<string, Own>([[NODE, entry('passing')]]);
  private closed = false;
  private readonly kept = new Map<string, Registration>();
  private readonly keptChecks = new Map<string, StandaloneCheck>();
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly node: string,
    private readonly catalog: Catalog,
    /** Applies a catalog write inside the driver (it spreads the record). */
    private readonly input: (apply: (nowMs: number) => void) => void,
    private readonly log: Logger,
  ) {}

  async register(registration: Registration, deregister: (id: string) => Promise<boolean>): Promise<ServiceHandle> {
    const { check: one, checks: many, persist, ...def } = registration ?? ({} as Registration);
    const defs = checkDefinitions(one, many, persist);
    const e = entry(def.health ?? 'passing');
    let id = '';
    const runs = defs.map((d) => this.healthCheck(d, () => id, e));
    this.input((now) => {
      id = this.catalog.register(now, runs.length === 0 ? def : { ...def, health: worstHealth(runs.map((r) => r.status)) });
    });
    e.checks = runs.map((run, n) => describe(run, defs[n] as CheckDefinition, id, def.name, n, runs.length));
    if (new Set(e.checks.map((c) => c.id)).size < e.checks.length) {
      this.input((now) => this.catalog.deregister(now, id));
      throw new InvalidOptionError('checks', 'two checks of one instance have the same id');
    }
    this.stop(id);
    this.own.set(id, e);
    if (persist === true) this.keep(() => this.kept.set(id, { ...registration, id }));
    if (runs.length > 0) {
      this.write(id, e);
      await Promise.all(runs.map((r) => r.start()));
    }
    const { catalog, node } = this;
    const ttl = (report: (c: Check) => void) => (): void => {
      const ttls = e.checks.filter((c) => c.run.isTtl);
      if (ttls.length === 0) throw new InvalidOptionError('check', 'pass()/warn()/fail() are for TTL checks');
      for (const c of ttls) report(c);
    };
    return {
      id,
      get health(): Health {
        return catalog.lookup(def.name).find((i) => i.node === node && i.id === id)?.health ?? 'critical';
      },
      checks: e.checks,
      pass: (note?: string) => ttl((c) => c.pass(note))(),
      warn: (note?: string) => ttl((c) => c.warn(note))(),
      fail: (note?: string) => ttl((c) => c.fail(note))(),
      deregister: () => deregister(id),
    };
  }

  /** Adds a check to instance `serviceId`, or to the node (it then counts against every instance here). */
  async addCheck(def: StandaloneCheck): Promise<CheckHandle> {
    const { serviceId = NODE, persist, ...check } = def ?? ({} as StandaloneCheck);
    if (typeof serviceId !== 'string') throw new InvalidOptionError('check.serviceId', 'must be a string');
    checkDefinitions(check, undefined, persist);
    const e = this.own.get(serviceId);
    if (e === undefined) throw new InvalidOptionError('check.serviceId', `no instance ${JSON.stringify(serviceId)} on this member`);
    if (e.checks.length >= CHECKS_MAX) throw new InvalidOptionError('check', `at most ${CHECKS_MAX} checks per instance`);
    const run = this.healthCheck(check, () => serviceId, e);
    const handle = describe(run, check, serviceId === NODE ? this.node : serviceId, serviceId === NODE ? this.node : this.serviceName(serviceId), e.checks.length, 1);
    if (check.id === undefined) throw new InvalidOptionError('check.id', 'a check added on its own needs an id');
    this.removeCheck(handle.id);
    e.checks.push(handle);
    if (persist === true) this.keep(() => this.keptChecks.set(handle.id, def));
    this.write(serviceId, e);
    await run.start();
    return handle;
  }

  /** Removes a check added by addCheck (or registered with an instance); false if there is none with that id. */
  removeCheck(checkId: string): boolean {
    for (const [id, e] of this.own) {
      const n = e.checks.findIndex((c) => c.id === checkId);
      if (n < 0) continue;
      e.checks[n]?.run.stop();
      e.checks.splice(n, 1);
      if (this.keptChecks.has(checkId)) this.keep(() => this.keptChecks.delete(checkId));
      this.write(id, e);
      return true;
    }
    return false;
  }

  /** Puts instance `serviceId`, or the whole node, in maintenance (critical, with `reason`), or (`false`) takes it out. */
  maintenance(reason: string | false, serviceId?: string): void {
    const id = serviceId ?? NODE;
    const e = this.own.get(id);
    if (e === undefined) throw new InvalidOptionError('serviceId', `no instance ${JSON.stringify(id)} on this member`);
    if (reason !== false && typeof reason !== 'string') throw new InvalidOptionError('reason', 'must be a string');
    const what = id === NODE ? 'node' : 'service';
    e.maintenance = reason === false ? undefined : {
      id: id === NODE ? '_node_maintenance' : `_service_maintenance:${id}`, name: `${what === 'node' ? 'Node' : 'Service'} Maintenance Mode`, type: 'maintenance',
      status: 'critical', output: '', intervalMs: 0, timeoutMs: 0, notes: reason === '' ? `Maintenance mode is enabled for this ${what}, but no reason was provided. This is a default message.` : reason,
    };
    this.write(id, e);
  }

  /** One of this member's checks by id (a registered instance's, or the node's). */
  check(checkId: string): CheckHandle | undefined {
    for (const e of this.own.values()) for (const c of e.checks) if (c.id === checkId) return c;
    return undefined;
  }

  /** Stops instance `id`'s checks (it is being deregistered or replaced). */
  stop(id: string): void {
    const e = this.own.get(id);
    if (e === undefined || id === NODE) return;
    clearTimeout(e.timer);
    for (const c of e.checks) c.run.stop();
    this.own.delete(id);
    const checks = [...this.keptChecks].filter(([, c]) => c.serviceId === id).map(([k]) => k);
    if (this.kept.has(id) || checks.length > 0) {
      this.keep(() => {
        this.kept.delete(id);
        for (const k of checks) this.keptChecks.delete(k);
      });
    }
  }

  list(): Persisted {
    return { services: [...this.kept.values()], checks: [...this.keptChecks.values()] };
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    for (const e of this.own.values()) {
      clearTimeout(e.timer);
      for (const c of e.checks) c.run.stop();
    }
    this.own.clear();
  }

  /** Changes what is persisted, then says so (not while closing: what is kept outlives the process). */
  private keep(change: () => void): void {
    if (this.closed) return;
    change();
    for (const l of this.listeners) l();
  }

  private serviceName(id: string): string {
    return this.catalog.nodeInstances(this.node).find((i) => i.id === id)?.service ?? id;
  }

  private healthCheck(def: CheckDefinition, id: () => string, e: Own): HealthCheck {
    return new HealthCheck(def, () => this.write(id(), e), () => this.outputChanged(id(), e));
  }

  private outputChanged(id: string, e: Own): void {
    if (e.timer !== undefined || this.own.get(id) !== e) return;
    const wait = e.writtenAt + CHECK_OUTPUT_REFRESH_MS - Date.now();
    if (wait <= 0) return this.write(id, e);
    e.timer = setTimeout(() => this.write(id, e), wait);
    e.timer.unref();
  }

  /** Writes the instance's (or the node's) checks, and the health they add up to, into the record. */
  private write(id: string, e: Own): void {
    if (this.closed || this.own.get(id) !== e) return;
    clearTimeout(e.timer);
    e.timer = undefined;
    e.writtenAt = Date.now();
    const records: CheckRecord[] = e.checks.map((c) => ({ id: c.id, name: c.name, type: c.type, status: c.status, output: c.output, notes: c.notes, ...c.run.timing }));
    if (e.maintenance !== undefined) records.push(e.maintenance);
    const health = worstHealth([...(e.checks.length === 0 ? [e.base] : []), ...records.map((r) => r.status)]);
    const set = (checks: CheckRecord[]) => (now: number): void => {
      if (id === NODE) this.catalog.setNodeChecks(now, checks);
      else this.catalog.setChecks(now, id, checks, health);
    };
    this.input((now) => {
      try {
        set(records)(now);
      } catch (err) {
        if (!(err instanceof OversizedError)) throw err;
        this.log.warn(`${id === NODE ? 'node' : `instance ${id}`}: check outputs would make the record too large (${err.size} bytes); they travel cut to ${OUTPUT_BYTES_SHORT} bytes`, { id });
        set(records.map((r) => ({ ...r, output: truncateUtf8(r.output, OUTPUT_BYTES_SHORT) })))(now);
      }
    });
  }
}

function entry(base: Health): Own {
  return { base, checks: [], maintenance: undefined, timer: undefined, writtenAt: -Infinity };
}

/** Validates a registration as register() would (InvalidOptionError naming the field), registering nothing. */
export function checkRegistration(registration: Registration): void {
  const { check: one, checks: many, persist, ...def } = registration ?? ({} as Registration);
  const defs = checkDefinitions(one, many, persist);
  toServiceRecord(def, def?.id ?? def?.name);
  // A check validates when made and does nothing until started.
  for (const d of defs) new HealthCheck(d, () => undefined);
}

/** An instance's check definitions as one list, within the limit; `persist` needs checks a file can hold. */
function checkDefinitions(one: CheckDefinition | undefined, many: readonly CheckDefinition[] | undefined, persist: unknown): CheckDefinition[] {
  if (many !== undefined && !Array.isArray(many)) throw new InvalidOptionError('checks', 'must be an array');
  const defs = [...(one !== undefined ? [one] : []), ...(many ?? [])];
  if (defs.length > CHECKS_MAX) throw new InvalidOptionError('checks', `at most ${CHECKS_MAX} checks per instance`);
  if (persist !== undefined && typeof persist !== 'boolean') throw new InvalidOptionError('persist', 'must be a boolean');
  if (persist === true && defs.some((d) => d !== null && typeof d === 'object' && typeof (d as { run?: unknown }).run === 'function')) {
    throw new InvalidOptionError('persist', 'a function check cannot be kept across restarts');
  }
  return defs;
}

/** A check as its handle shows it: Consul's default id and name unless the definition names them. */
function describe(run: HealthCheck, def: CheckDefinition, serviceId: string, service: string, n: number, count: number): Check {
  return {
    run,
    id: def.id ?? (count === 1 ? `service:${serviceId}` : `service:${serviceId}:${n + 1}`),
    name: def.name ?? `Service '${service}' check`,
    type: run.type,
    notes: def.notes ?? '',
    get status(): Health {
      return run.status;
    },
    get output(): string {
      return run.output;
    },
    pass: (note) => run.pass(note),
    warn: (note) => run.warn(note),
    fail: (note) => run.fail(note),
  };
}
