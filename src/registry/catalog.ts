/**
 * The Catalog: one member's view of every service in the cluster, and the one seam every
 * interface reads (the runtime API, the simulator's views; HTTP, DNS, bridges and clients next).
 *
 * - It talks to the membership core through a narrow port (CatalogPort): its own name, the
 *   record limit, `setLocalRecord`, and its own state. A driver builds one Catalog per core and
 *   hands it every membership event it drains (`handleEvent`).
 * - Writes: the owner's own services and node metadata. Every write re-encodes this member's
 *   record and checks it against the core's limit before changing anything (an oversized record
 *   is a typed error, never a truncation), hands it to the core, which spreads it under the next
 *   version, and shows it in this member's own lookups at once.
 * - Reads: lookup, pick, services, node metadata, watches, and a change feed whose index grows
 *   with every change, per service and for the whole catalog (blocking queries wait on it).
 * Pure: no I/O and no clock; time comes in with each write.
 */
import type { MembershipEvent } from '../core/context.js';
import type { MemberInfo } from '../core/members.js';
import { InvalidOptionError, OversizedError } from '../core/errors.js';
import { type CheckRecord, checkMeta, decodeRecord, encodeRecord, type Health, RECORD_LIMITS, type ServiceDefinition, type ServiceRecord, toChecks, toServiceRecord } from './record.js';
import { DEFAULT_POOL, type ImportedInstance, type Instance, type InstanceSource, type LookupFilter, type PickOptions, type PickStrategy, Registry, type RegistryOptions, type ServiceChange } from './registry.js';
import { watchService, type WatchOptions } from './watch.js';

/** What the Catalog needs of the membership core (`Membership` provides it). */
export interface CatalogPort {
  /** This member's name. */
  readonly name: string;
  /** Largest record the core accepts, in bytes. */
  readonly recordBytesMax: number;
  setLocalRecord(nowMs: number, record: Uint8Array): void;
  /** This member's current state, record included. */
  self(): MemberInfo;
}

/** A member as users see it: its node metadata decoded from its record. */
export type Member = Omit<MemberInfo, 'record'> & { meta: Readonly<Record<string, string>> };

export type CatalogOptions = RegistryOptions;

/** The read side of a Catalog: what interfaces (HTTP, DNS, bridges, clients) may use. */
export type CatalogView = Pick<Catalog, 'pool' | 'lookup' | 'pick' | 'services' | 'nodeInstances' | 'nodeMeta' | 'nodeChecks' | 'nodeKeys' | 'toMember' | 'watch' | 'onChange' | 'index' | 'serviceIndex' | 'size' | 'badRecords'>;

/** What bridges write into a catalog: instances read from a store, each under its key there. */
export type ImportSink = Pick<Catalog, 'setImported'>;

export class Catalog {
  private readonly registry: Registry;
  private own = new Map<string, ServiceRecord>();
  private meta: Readonly<Record<string, string>> = {};
  private checks: readonly CheckRecord[] = [];
  private keys: readonly string[] = [];
  /** This member's gossip pool (every gossip instance carries it). */
  readonly pool: string;

  constructor(
    private readonly core: CatalogPort,
    options: CatalogOptions,
  ) {
    this.registry = new Registry(options);
    this.pool = options.pool ?? DEFAULT_POOL;
  }

  // ---------------------------------------------------------------- from the core

  /** Takes the current state of members (the core's `members()`), e.g. for a catalog built after the core started. */
  load(members: Iterable<MemberInfo>): void {
    for (const m of members) this.registry.applyMember(m);
  }

  /** Routes a membership event to the index (drivers call this for every event they drain). */
  handleEvent(e: MembershipEvent): void {
    if ('member' in e) this.registry.applyMember(e.member);
  }

  // ---------------------------------------------------------------- the owner's writes

  /** Adds or replaces (same id) a service instance of this member; returns its id. */
  register(nowMs: number, def: ServiceDefinition): string {
    const id = def?.id ?? this.defaultId(def?.name, def?.port);
    const record = toServiceRecord(def, id);
    const next = new Map(this.own);
    next.set(id, record);
    this.write(nowMs, next, this.meta);
    return id;
  }

  /** Removes an instance of this member; false if it has none with that id. */
  deregister(nowMs: number, id: string): boolean {
    if (!this.own.has(id)) return false;
    const next = new Map(this.own);
    next.delete(id);
    this.write(nowMs, next, this.meta);
    return true;
  }

  /** Sets an instance's health (an owner without check details, as the simulator); a no-op if unchanged or unknown. */
  setHealth(nowMs: number, id: string, health: Health): void {
    const s = this.own.get(id);
    if (s === undefined || s.health === health) return;
    const next = new Map(this.own);
    next.set(id, { ...s, health });
    this.write(nowMs, next, this.meta);
  }

  /** Sets an instance's checks and its health; a no-op if unchanged or unknown. Outputs are cut to CHECK_OUTPUT_BYTES_MAX. */
  setChecks(nowMs: number, id: string, checks: readonly CheckRecord[], health: Health): void {
    const s = this.own.get(id);
    if (s === undefined) return;
    const next = toChecks(checks);
    if (s.health === health && JSON.stringify(s.checks) === JSON.stringify(next)) return;
    const services = new Map(this.own);
    services.set(id, { ...s, health, checks: next });
    this.write(nowMs, services, this.meta);
  }

  /** Replaces this member's node checks (maintenance, checks of no service): each counts against every instance here. */
  setNodeChecks(nowMs: number, checks: readonly CheckRecord[]): void {
    const next = toChecks(checks);
    if (JSON.stringify(next) === JSON.stringify(this.checks)) return;
    this.write(nowMs, this.own, this.meta, next);
  }

  /** Says which keys this member's keyring holds (fingerprints, the primary first), so every member can count them. */
  setKeyFingerprints(nowMs: number, keys: readonly string[]): void {
    if (keys.length === this.keys.length && keys.every((k, i) => k === this.keys[i])) return;
    if (keys.length > RECORD_LIMITS.keysMax) throw new InvalidOptionError('keyring', `at most ${RECORD_LIMITS.keysMax} keys`);
    this.write(nowMs, this.own, this.meta, this.checks, [...keys]);
  }

  /** Replaces this member's node metadata. */
  setNodeMeta(nowMs: number, meta: Readonly<Record<string, string>>): void {
    this.write(nowMs, this.own, checkMeta(meta, 'meta'));
  }

  // ---------------------------------------------------------------- bridges' imports

  /**
   * Adds, replaces or (undefined) removes an instance a bridge read from a store; `key` names
   * the store and the entry's key there ("etcd http://127.0.0.1:2379 services/web/1").
   */
  setImported(key: string, entry: ImportedInstance | undefined, source: Exclude<InstanceSource, 'gossip'>): void {
    this.registry.setImported(key, entry, source);
  }

  // ---------------------------------------------------------------- reads

  /** Instances of `service` matching `filter`, from memory. The array is frozen. */
  lookup(service: string, filter?: LookupFilter): readonly Instance[] {
    checkService(service);
    if (filter !== undefined) checkFilter(filter);
    return this.registry.lookup(service, filter);
  }

  /** One instance of `service`: healthy ones only unless `healthy: false`, suspect members' last. */
  pick(service: string, options?: PickOptions): Instance | undefined {
    checkService(service);
    if (options !== undefined) {
      checkFilter(options);
      if (options.strategy !== undefined && !STRATEGIES.includes(options.strategy)) {
        throw new InvalidOptionError('strategy', `must be one of ${STRATEGIES.join(', ')}; got ${JSON.stringify(options.strategy)}`);
      }
    }
    return this.registry.pick(service, options);
  }

  /** Names of services with at least one instance. */
  services(): string[] {
    return this.registry.services();
  }

  /** The instances a live member registered (suspect ones included), in its record's order. */
  nodeInstances(node: string): readonly Instance[] {
    return this.registry.nodeInstances(node);
  }

  /** A live member's node checks, from its record. */
  nodeChecks(node: string): readonly CheckRecord[] {
    return this.registry.nodeChecks(node);
  }

  /** Fingerprints of the keys a live member's keyring holds, the primary first (empty: no keyring, or a member that predates them). */
  nodeKeys(node: string): readonly string[] {
    return this.registry.nodeKeys(node);
  }

  /** Node metadata from a live member's record. */
  nodeMeta(node: string): Readonly<Record<string, string>> | undefined {
    return this.registry.nodeMeta(node);
  }

  /** A member with its node metadata decoded (from the index when it holds the member's record). */
  toMember(info: MemberInfo): Member {
    let meta = this.registry.nodeMeta(info.name);
    if (meta === undefined) {
      const record = decodeRecord(info.record);
      meta = typeof record === 'string' ? {} : record.meta;
    }
    const { record: _bytes, ...rest } = info;
    return { ...rest, meta };
  }

  /** Changes to `service` as an async iterator (current instances first unless `initial: false`). */
  watch(service: string, options: WatchOptions = {}): AsyncIterableIterator<ServiceChange> {
    checkService(service);
    return watchService(this.registry, service, options);
  }

  /** Calls `listener` on every instance added, updated or removed. Returns the unsubscribe function. */
  onChange(listener: (change: ServiceChange) => void): () => void {
    return this.registry.onChange(listener);
  }

  /** The change index of the whole catalog: one more with every change. */
  get index(): number {
    return this.registry.index;
  }

  /** A change index for one service: it grows whenever that service changes. */
  serviceIndex(service: string): number {
    return this.registry.serviceIndex(service);
  }

  /** Instances across all services. */
  get size(): number {
    return this.registry.size;
  }

  /** Records from peers that failed to decode. */
  get badRecords(): number {
    return this.registry.badRecords;
  }

  // ---------------------------------------------------------------- internals

  private defaultId(name: unknown, port: unknown): string {
    const base = String(name);
    return this.own.has(base) && this.own.get(base)?.port !== port ? `${base}-${String(port)}` : base;
  }

  private write(nowMs: number, services: Map<string, ServiceRecord>, meta: Readonly<Record<string, string>>, checks = this.checks, keys = this.keys): void {
    const bytes = encodeRecord({ meta, services: [...services.values()], checks, keys });
    const limit = this.core.recordBytesMax;
    if (bytes.length > limit) throw new OversizedError('record', bytes.length, limit);
    this.core.setLocalRecord(nowMs, bytes);
    this.own = services;
    this.meta = meta;
    this.checks = checks;
    this.keys = keys;
    this.registry.applyMember(this.core.self());
  }
}

const STRATEGIES: readonly PickStrategy[] = ['round-robin', 'random', 'weighted'];

/** A service name argument: a non-empty string, else InvalidOptionError('service'). */
function checkService(service: unknown): asserts service is string {
  if (typeof service !== 'string' || service.length === 0) throw new InvalidOptionError('service', `must be a non-empty string; got ${service === '' ? 'an empty string' : typeof service}`);
}

/** A lookup filter's fields, each checked by type (InvalidOptionError naming it). */
function checkFilter(filter: LookupFilter): void {
  if (filter === null || typeof filter !== 'object') throw new InvalidOptionError('filter', 'must be an object');
  const { tags, meta, healthy, pool } = filter;
  if (pool !== undefined && typeof pool !== 'string') throw new InvalidOptionError('pool', 'must be a string');
  if (tags !== undefined && (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string'))) throw new InvalidOptionError('tags', 'must be an array of strings');
  if (meta !== undefined && (meta === null || typeof meta !== 'object' || !Object.values(meta).every((v) => typeof v === 'string'))) {
    throw new InvalidOptionError('meta', 'must be an object of strings');
  }
  if (healthy !== undefined && typeof healthy !== 'boolean') throw new InvalidOptionError('healthy', 'must be a boolean');
}
