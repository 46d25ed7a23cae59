/**
 * The service index every node keeps: all instances from all live members' records, kept up to
 * date from membership changes, answering lookups and picks from memory. Pure: no I/O, no clock;
 * randomness for picks comes from the injected Rng so simulated clusters replay exactly.
 *
 * Updates cost O(instances of the changed node); a lookup without a filter is a map read that
 * returns a cached frozen array (rebuilt once after a change to that service, not per call).
 */
import { formatAddress, hostOf } from '../core/address.js';
import { InvalidOptionError } from '../core/errors.js';
import type { MemberInfo } from '../core/members.js';
import { type Rng, randomFloat, randomInt } from '../core/rng.js';
import { type CheckRecord, decodeRecord, EMPTY_NODE_RECORD, type Health, type NodeRecord, type ExternalNode, type ServiceRecord, type TaggedAddress, worstHealth } from './record.js';

/** A service instance as lookups return it. Objects are frozen and replaced, never mutated. */
export interface Instance {
  readonly id: string;
  /** Service name. */
  readonly service: string;
  /** The member that registered it. */
  readonly node: string;
  /** Host name or IP address, IPv6 without brackets ("::1"). */
  readonly address: string;
  readonly port: number;
  /** "address:port" with IPv6 bracketed ("[::1]:8080"): ready for a URL or a connect string. */
  readonly hostPort: string;
  /** `scheme://hostPort` plus `path` (default scheme http): `instance.url('https', '/health')`. */
  url(scheme?: string, path?: string): string;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  /** Share of weighted picks while warning (default 1). */
  readonly warningWeight: number;
  readonly health: Health;
  /** The checks behind `health`, as its owner last spread them (Consul's check list). */
  readonly checks: readonly CheckRecord[];
  /** Named other addresses ("lan_ipv4", "wan"). */
  readonly taggedAddresses: Readonly<Record<string, TaggedAddress>>;
  /** For an instance of a node that runs no member: that node (`node` is then the member that spreads it). */
  readonly external: ExternalNode | undefined;
  /** Its member is suspected of having failed (not yet declared dead). */
  readonly suspect: boolean;
  /** Where the instance comes from: 'gossip' for members' records; bridges add their own. */
  readonly source: InstanceSource;
  /**
   * The gossip pool that registered it: this member's own pool for gossip instances, the writer's
   * for instances a bridge imported from another pool, '' for entries written by other tools.
   */
  readonly pool: string;
}

/** An instance a bridge read from a store, before the catalog gives it its methods. */
export type ImportedInstance = Omit<Instance, 'url' | 'hostPort' | 'suspect' | 'source' | ExtraFields> & Partial<Pick<Instance, ExtraFields>>;

/** Instance fields a store's entry may leave out. */
type ExtraFields = 'checks' | 'taggedAddresses' | 'warningWeight' | 'external';

export type InstanceSource = 'gossip' | 'etcd' | 'zookeeper';

export interface ServiceChange {
  type: 'added' | 'updated' | 'removed';
  instance: Instance;
  /** The catalog's change index after this change: it grows by one with every change. */
  index: number;
}

export interface LookupFilter {
  /** Instances carrying every one of these tags. */
  tags?: readonly string[];
  /** Instances whose metadata has each of these key/value pairs. */
  meta?: Readonly<Record<string, string>>;
  /** Only instances whose health is not critical (passing or warning). */
  healthy?: boolean;
  /** Only instances of this gossip pool ('' for imported entries that name none). */
  pool?: string;
}

export type PickStrategy = 'round-robin' | 'random' | 'weighted';

/** Picks prefer, in order: this member's own pool, members not suspected, then the strategy. */
export interface PickOptions extends LookupFilter {
  /** Default round-robin. `weighted` picks in proportion to each instance's weight. */
  strategy?: PickStrategy;
}

export interface RegistryOptions {
  rng: Rng;
  /** Whether a suspect member's instances stay in lookups (marked `suspect`). Default true, as SWIM expects most suspicions to be refuted. */
  includeSuspect?: boolean;
  /** This member's gossip pool, given to every gossip instance. Default 'default'. */
  pool?: string;
}

const NONE: readonly Instance[] = Object.freeze([]);

export const DEFAULT_POOL = 'default';

/** Distinct tag/meta filters whose results each service keeps between changes. */
const FILTERS_CACHED_MAX = 16;

class ServiceIndex {
  readonly byKey = new Map<string, Instance>();
  visible: readonly Instance[] | undefined = undefined;
  healthy: readonly Instance[] | undefined = undefined;
  filtered: Map<string, readonly Instance[]> | undefined = undefined;
  /** Instances whose member is suspect: picks avoid them while this is non-zero. */
  suspects = 0;
  /** Instances from other pools (or none): picks prefer this member's pool while there are any. */
  foreign = 0;
  cursor = 0;

  changed(): void {
    this.visible = undefined;
    this.healthy = undefined;
    this.filtered = undefined;
  }
}

interface NodeState {
  /** The record bytes last decoded (the core hands out the same array until the record changes). */
  bytes: Uint8Array;
  addr: string;
  suspect: boolean;
  record: NodeRecord;
  instances: Map<string, Instance>;
}

export class Registry {
  private readonly rng: Rng;
  private readonly includeSuspect: boolean;
  private readonly pool: string;
  /** Instances bridges imported, by a key naming the store and its key there. */
  private readonly imported = new Map<string, Instance>();
  private readonly nodes = new Map<string, NodeState>();
  private readonly byService = new Map<string, ServiceIndex>();
  private readonly listeners = new Set<(change: ServiceChange) => void>();
  private readonly cumulative = new WeakMap<readonly Instance[], Float64Array>();
  private instanceCount = 0;
  private changeIndex = 0;
  /** The index of the last change to each service that has instances. */
  private readonly serviceIndexes = new Map<string, number>();
  /** The index at which the last service lost its last instance: what any service without instances reports. */
  private emptiedIndex = 0;
  /** Records from peers that failed to decode (their previous record, if any, stays). */
  badRecords = 0;

  constructor(options: RegistryOptions) {
    this.rng = options.rng;
    this.includeSuspect = options.includeSuspect ?? true;
    this.pool = options.pool ?? DEFAULT_POOL;
  }

  /** Takes a member's current state: a new record, address or suspicion updates its instances; dead or left removes them. */
  applyMember(member: MemberInfo): void {
    if (member.state === 'dead' || member.state === 'left') {
      this.removeNode(member.name);
      return;
    }
    const suspect = member.state === 'suspect';
    const old = this.nodes.get(member.name);
    if (old !== undefined && old.bytes === member.record && old.suspect === suspect && old.addr === member.addr) return;
    let record = old?.record;
    if (old === undefined || old.bytes !== member.record) {
      const decoded = decodeRecord(member.record);
      if (typeof decoded === 'string') this.badRecords++;
      else record = decoded;
    }
    // Most members register nothing: keep no state for them (their next record is decoded afresh).
    if (record !== undefined && record.services.length === 0 && old === undefined && isEmpty(record.meta) && record.checks.length === 0 && record.keys.length === 0) return;
    const state: NodeState = {
      bytes: member.record, addr: member.addr, suspect, record: record ?? EMPTY_NODE_RECORD, instances: new Map(),
    };
    this.nodes.set(member.name, state);
    const host = hostOf(member.addr);
    for (const s of state.record.services) {
      const next = makeInstance(member.name, host, s, suspect, this.pool, state.record.checks);
      const prev = old?.instances.get(s.id);
      if (prev !== undefined && sameInstance(prev, next)) {
        state.instances.set(s.id, prev);
        continue;
      }
      state.instances.set(s.id, next);
      this.replace(keyOf(next), prev, next);
    }
    if (old !== undefined) {
      for (const [id, prev] of old.instances) if (!state.instances.has(id)) this.remove(keyOf(prev), prev);
    }
  }

  removeNode(name: string): void {
    const old = this.nodes.get(name);
    if (old === undefined) return;
    this.nodes.delete(name);
    for (const prev of old.instances.values()) this.remove(keyOf(prev), prev);
  }

  /**
   * Adds, replaces or (with undefined) removes an instance a bridge imported. `key` names the
   * store and the entry's key there, so entries from two stores or pools never collide.
   */
  setImported(key: string, entry: ImportedInstance | undefined, source: InstanceSource): void {
    const k = `\u0001${key}`;
    const prev = this.imported.get(k);
    if (entry === undefined) {
      if (prev === undefined) return;
      this.imported.delete(k);
      this.remove(k, prev);
      return;
    }
    const next = freezeInstance({ checks: [], taggedAddresses: {}, warningWeight: 1, external: undefined, ...entry, hostPort: formatAddress(entry.address, entry.port), suspect: false, source });
    if (prev !== undefined && sameInstance(prev, next)) return;
    this.imported.set(k, next);
    this.replace(k, prev, next);
  }

  /** Puts `next` where `prev` (same key) was: an update when the service is the same, else a removal and an addition. */
  private replace(key: string, prev: Instance | undefined, next: Instance): void {
    if (prev !== undefined && prev.service !== next.service) this.remove(key, prev);
    this.put(key, next, prev !== undefined && prev.service === next.service ? 'updated' : 'added');
  }

  /** Instances of `name` matching `filter`, from memory. The array is frozen; do not keep it across changes expecting updates. */
  lookup(name: string, filter?: LookupFilter): readonly Instance[] {
    const idx = this.byService.get(name);
    if (idx === undefined) return NONE;
    if (filter === undefined) return idx.visible ?? this.visibleOf(idx);
    return this.select(idx, filter.healthy === true, filter.tags, filter.meta, filter.pool);
  }

  /**
   * One instance of `name`, healthy ones only unless `healthy: false`; undefined if none.
   * Instances of suspect members are picked only when there is nothing else.
   */
  pick(name: string, options?: PickOptions): Instance | undefined {
    const idx = this.byService.get(name);
    if (idx === undefined) return undefined;
    let list = options === undefined
      ? idx.healthy ?? this.healthyOf(idx)
      : this.select(idx, options.healthy !== false, options.tags, options.meta, options.pool);
    if (idx.foreign > 0) {
      const local = list.filter((i) => i.pool === this.pool);
      if (local.length > 0) list = local;
    }
    if (idx.suspects > 0) {
      const trusted = list.filter((i) => !i.suspect);
      if (trusted.length > 0) list = trusted;
    }
    const n = list.length;
    if (n === 0) return undefined;
    const strategy = options?.strategy;
    if (strategy === undefined || strategy === 'round-robin') {
      idx.cursor = (idx.cursor + 1) % 0x4000_0000;
      return list[idx.cursor % n];
    }
    if (strategy === 'random') return list[randomInt(this.rng, n)];
    return this.weighted(list);
  }

  /**
   * The instances passing a filter. Results for tag/meta filters are cached per service (a few
   * distinct filters each, dropped on any change to the service), so a caller asking the same
   * question in a loop pays a map read, not a scan.
   */
  private select(idx: ServiceIndex, healthy: boolean, tags: readonly string[] | undefined, meta: LookupFilter['meta'], pool: string | undefined): readonly Instance[] {
    const base = healthy ? idx.healthy ?? this.healthyOf(idx) : idx.visible ?? this.visibleOf(idx);
    if ((tags === undefined || tags.length === 0) && meta === undefined && (pool === undefined || idx.foreign === 0 && pool === this.pool)) return base;
    let key = healthy ? 'h' : 'a';
    if (pool !== undefined) key += `\u0004${pool}`;
    if (tags !== undefined) for (const t of tags) key += `\u0001${t}`;
    if (meta !== undefined) for (const k in meta) key += `\u0002${k}\u0003${meta[k] as string}`;
    const cached = idx.filtered?.get(key);
    if (cached !== undefined) return cached;
    const out = Object.freeze(base.filter((i) => matches(i, tags, meta) && (pool === undefined || i.pool === pool)));
    idx.filtered ??= new Map();
    if (idx.filtered.size < FILTERS_CACHED_MAX) idx.filtered.set(key, out);
    return out;
  }

  /** A weighted choice by binary search over cumulative weights, computed once per list. */
  private weighted(list: readonly Instance[]): Instance | undefined {
    let sums = this.cumulative.get(list);
    if (sums === undefined) {
      sums = new Float64Array(list.length);
      let total = 0;
      for (let i = 0; i < list.length; i++) sums[i] = total += (list[i] as Instance).weight;
      this.cumulative.set(list, sums);
    }
    const total = sums[sums.length - 1] as number;
    if (total <= 0) return list[randomInt(this.rng, list.length)];
    const point = randomFloat(this.rng) * total;
    let lo = 0;
    let hi = sums.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((sums[mid] as number) > point) hi = mid;
      else lo = mid + 1;
    }
    return list[lo];
  }

  /** Names of services with at least one instance. */
  services(): string[] {
    return [...this.byService.keys()];
  }

  /** The instances of a live member, in its record's order. */
  nodeInstances(node: string): readonly Instance[] {
    const state = this.nodes.get(node);
    return state === undefined ? NONE : [...state.instances.values()];
  }

  /** Node metadata from a member's record, if the member is known and live. */
  nodeMeta(node: string): Readonly<Record<string, string>> | undefined {
    return this.nodes.get(node)?.record.meta;
  }

  /** A live member's key fingerprints. */
  nodeKeys(node: string): readonly string[] {
    return this.nodes.get(node)?.record.keys ?? EMPTY_NODE_RECORD.keys;
  }

  /** A live member's node checks. */
  nodeChecks(node: string): readonly CheckRecord[] {
    return this.nodes.get(node)?.record.checks ?? EMPTY_NODE_RECORD.checks;
  }

  /** Instances across all services. */
  get size(): number {
    return this.instanceCount;
  }

  /** The change index: 0 at first, one more with every instance added, updated or removed. */
  get index(): number {
    return this.changeIndex;
  }

  /**
   * A change index for one service that grows whenever the service changes (Consul's
   * X-Consul-Index per query): the last change to it, or for a service with no instances, a
   * value at least as high as the change that emptied it.
   */
  serviceIndex(name: string): number {
    return this.serviceIndexes.get(name) ?? this.emptiedIndex;
  }

  /** Calls `listener` on every instance added, updated or removed. Returns the unsubscribe function. */
  onChange(listener: (change: ServiceChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private visibleOf(idx: ServiceIndex): readonly Instance[] {
    if (idx.visible === undefined) {
      const all = [...idx.byKey.values()];
      idx.visible = Object.freeze(this.includeSuspect ? all : all.filter((i) => !i.suspect));
    }
    return idx.visible;
  }

  private healthyOf(idx: ServiceIndex): readonly Instance[] {
    idx.healthy ??= Object.freeze(this.visibleOf(idx).filter((i) => i.health !== 'critical'));
    return idx.healthy;
  }

  private put(key: string, instance: Instance, type: 'added' | 'updated'): void {
    let idx = this.byService.get(instance.service);
    if (idx === undefined) {
      idx = new ServiceIndex();
      this.byService.set(instance.service, idx);
    }
    const previous = idx.byKey.get(key);
    if (previous === undefined) this.instanceCount++;
    else this.count(idx, previous, -1);
    this.count(idx, instance, 1);
    idx.byKey.set(key, instance);
    idx.changed();
    this.serviceIndexes.set(instance.service, ++this.changeIndex);
    this.notify({ type, instance, index: this.changeIndex });
  }

  private count(idx: ServiceIndex, instance: Instance, delta: number): void {
    if (instance.suspect) idx.suspects += delta;
    if (instance.pool !== this.pool) idx.foreign += delta;
  }

  private remove(key: string, instance: Instance): void {
    const idx = this.byService.get(instance.service);
    if (idx === undefined || !idx.byKey.delete(key)) return;
    this.instanceCount--;
    this.count(idx, instance, -1);
    idx.changed();
    this.changeIndex++;
    if (idx.byKey.size === 0) {
      this.byService.delete(instance.service);
      this.serviceIndexes.delete(instance.service);
      this.emptiedIndex = this.changeIndex;
    } else {
      this.serviceIndexes.set(instance.service, this.changeIndex);
    }
    this.notify({ type: 'removed', instance, index: this.changeIndex });
  }

  private notify(change: ServiceChange): void {
    for (const listener of this.listeners) listener(change);
  }
}

function isEmpty(meta: Readonly<Record<string, string>>): boolean {
  for (const _ in meta) return false;
  return true;
}

function keyOf(i: Instance): string {
  return `${i.node}\u0000${i.id}`;
}

/** Shared by every instance, so `url` costs no memory per instance (and stays out of JSON). */
const INSTANCE_METHODS = Object.freeze({
  url(this: Instance, scheme = 'http', path = ''): string {
    if (typeof scheme !== 'string' || !/^[a-z][a-z0-9+.-]*$/i.test(scheme)) throw new InvalidOptionError('scheme', `not a URL scheme: ${String(scheme)}`);
    if (typeof path !== 'string') throw new InvalidOptionError('path', 'must be a string');
    return `${scheme}://${this.hostPort}${path === '' || path.startsWith('/') ? path : `/${path}`}`;
  },
});

function freezeInstance(fields: Omit<Instance, 'url'>): Instance {
  return Object.freeze(Object.assign(Object.create(INSTANCE_METHODS) as { url: Instance['url'] }, fields));
}

/** An instance of a member's record; its node's checks count against its health, as in Consul. */
function makeInstance(node: string, host: string, s: ServiceRecord, suspect: boolean, pool: string, nodeChecks: readonly CheckRecord[]): Instance {
  const address = s.address !== '' ? s.address : s.external?.address ?? host;
  // An external node's health is its own checks', not the spreading member's.
  const health = nodeChecks.length === 0 || s.external !== undefined ? s.health : worstHealth([s.health, ...nodeChecks.map((c) => c.status)]);
  return freezeInstance({
    id: s.id, service: s.name, node, address, port: s.port, hostPort: formatAddress(address, s.port),
    tags: s.tags, meta: s.meta, weight: s.weight, warningWeight: s.warningWeight, health, checks: s.checks,
    taggedAddresses: s.taggedAddresses, external: s.external, suspect, source: 'gossip', pool,
  });
}

function sameInstance(a: Instance, b: Instance): boolean {
  return a.service === b.service && a.address === b.address && a.port === b.port && a.weight === b.weight && a.id === b.id && a.node === b.node
    && a.pool === b.pool && a.health === b.health && a.suspect === b.suspect && a.warningWeight === b.warningWeight && sameList(a.tags, b.tags)
    && sameMeta(a.meta, b.meta) && sameChecks(a.checks, b.checks) && sameTagged(a.taggedAddresses, b.taggedAddresses) && sameExternal(a.external, b.external);
}

/** Field by field: this runs for every instance of every record that changes, so no serializing. */
function sameChecks(a: readonly CheckRecord[], b: readonly CheckRecord[]): boolean {
  return a.length === b.length && a.every((c, n) => {
    const d = b[n] as CheckRecord;
    return c.id === d.id && c.name === d.name && c.type === d.type && c.status === d.status && c.output === d.output
      && c.notes === d.notes && c.intervalMs === d.intervalMs && c.timeoutMs === d.timeoutMs;
  });
}

function sameTagged(a: Readonly<Record<string, TaggedAddress>>, b: Readonly<Record<string, TaggedAddress>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k]?.address === b[k]?.address && a[k]?.port === b[k]?.port);
}

function sameExternal(a: ExternalNode | undefined, b: ExternalNode | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.node === b.node && a.address === b.address && sameMeta(a.meta, b.meta));
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameMeta(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

function matches(i: Instance, tags: readonly string[] | undefined, meta: Readonly<Record<string, string>> | undefined): boolean {
  if (tags !== undefined) for (const t of tags) if (!i.tags.includes(t)) return false;
  if (meta !== undefined) for (const [k, v] of Object.entries(meta)) if (i.meta[k] !== v) return false;
  return true;
}
