/**
 * The service index every node keeps: all instances from all live members' records, kept up to
 * date from membership changes, answering lookups and picks from memory. Pure: no I/O, no clock;
 * randomness for picks comes from the injected Rng so simulated clusters replay exactly.
 *
 * Updates cost O(instances of the changed node); a lookup without a filter is a map read that
 * returns a cached frozen array (rebuilt once after a change to that service, not per call).
 */
import type { MemberInfo } from '../core/members.js';
import { type Rng, randomFloat, randomInt } from '../core/rng.js';
import { decodeRecord, type Health, type NodeRecord, type ServiceRecord } from './record.js';

/** A service instance as lookups return it. Objects are frozen and replaced, never mutated. */
export interface Instance {
  readonly id: string;
  /** Service name. */
  readonly service: string;
  /** The member that registered it. */
  readonly node: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  readonly health: Health;
  /** Its member is suspected of having failed (not yet declared dead). */
  readonly suspect: boolean;
}

export interface ServiceChange {
  type: 'added' | 'updated' | 'removed';
  instance: Instance;
}

export interface LookupFilter {
  /** Instances carrying every one of these tags. */
  tags?: readonly string[];
  /** Instances whose metadata has each of these key/value pairs. */
  meta?: Readonly<Record<string, string>>;
  /** Only instances whose health is not critical (passing or warning). */
  healthy?: boolean;
}

export type PickStrategy = 'round-robin' | 'random' | 'weighted';

export interface PickOptions extends LookupFilter {
  /** Default round-robin. `weighted` picks in proportion to each instance's weight. */
  strategy?: PickStrategy;
}

export interface RegistryOptions {
  rng: Rng;
  /** Whether a suspect member's instances stay in lookups (marked `suspect`). Default true, as SWIM expects most suspicions to be refuted. */
  includeSuspect?: boolean;
}

const NONE: readonly Instance[] = Object.freeze([]);

class ServiceIndex {
  readonly byKey = new Map<string, Instance>();
  visible: readonly Instance[] | undefined;
  healthy: readonly Instance[] | undefined;
  cursor = 0;
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
  private readonly nodes = new Map<string, NodeState>();
  private readonly index = new Map<string, ServiceIndex>();
  private readonly listeners = new Set<(change: ServiceChange) => void>();
  private instanceCount = 0;
  /** Records from peers that failed to decode (their previous record, if any, stays). */
  badRecords = 0;

  constructor(options: RegistryOptions) {
    this.rng = options.rng;
    this.includeSuspect = options.includeSuspect ?? true;
  }

  /** Takes a member's current state: a new record, address or suspicion updates its instances; dead or left removes them. */
  applyMember(member: MemberInfo): void {
    if (member.state === 'dead' || member.state === 'left') {
      this.removeNode(member.name);
      return;
    }
    const suspect = member.state === 'suspect';
    const old = this.nodes.get(member.name);
    if (old !== undefined && old.bytes === member.meta && old.suspect === suspect && old.addr === member.addr) return;
    let record = old?.record;
    if (old === undefined || old.bytes !== member.meta) {
      const decoded = decodeRecord(member.meta);
      if (typeof decoded === 'string') this.badRecords++;
      else record = decoded;
    }
    // Most members register nothing: keep no state for them (their next record is decoded afresh).
    if (record !== undefined && record.services.length === 0 && old === undefined && isEmpty(record.meta)) return;
    const state: NodeState = {
      bytes: member.meta, addr: member.addr, suspect, record: record ?? { meta: {}, services: [] }, instances: new Map(),
    };
    this.nodes.set(member.name, state);
    const host = hostOf(member.addr);
    for (const s of state.record.services) {
      const next = makeInstance(member.name, host, s, suspect);
      const prev = old?.instances.get(s.id);
      if (prev !== undefined && sameInstance(prev, next)) {
        state.instances.set(s.id, prev);
        continue;
      }
      state.instances.set(s.id, next);
      if (prev !== undefined && prev.service !== next.service) this.remove(prev);
      this.put(next, prev !== undefined && prev.service === next.service ? 'updated' : 'added');
    }
    if (old !== undefined) {
      for (const [id, prev] of old.instances) if (!state.instances.has(id)) this.remove(prev);
    }
  }

  removeNode(name: string): void {
    const old = this.nodes.get(name);
    if (old === undefined) return;
    this.nodes.delete(name);
    for (const prev of old.instances.values()) this.remove(prev);
  }

  /** Instances of `name` matching `filter`, from memory. The array is frozen; do not keep it across changes expecting updates. */
  lookup(name: string, filter?: LookupFilter): readonly Instance[] {
    const idx = this.index.get(name);
    if (idx === undefined) return NONE;
    const base = filter?.healthy === true ? this.healthyOf(idx) : this.visibleOf(idx);
    const tags = filter?.tags;
    const meta = filter?.meta;
    if ((tags === undefined || tags.length === 0) && meta === undefined) return base;
    return base.filter((i) => matches(i, tags, meta));
  }

  /** One instance of `name`, healthy ones only unless `healthy: false`; undefined if none. */
  pick(name: string, options: PickOptions = {}): Instance | undefined {
    const idx = this.index.get(name);
    if (idx === undefined) return undefined;
    const list = this.lookup(name, options.healthy === false ? options : { ...options, healthy: true });
    if (list.length === 0) return undefined;
    switch (options.strategy ?? 'round-robin') {
      case 'round-robin':
        idx.cursor = (idx.cursor + 1) % 0x4000_0000;
        return list[idx.cursor % list.length];
      case 'random':
        return list[randomInt(this.rng, list.length)];
      case 'weighted': {
        let total = 0;
        for (const i of list) total += i.weight;
        if (total <= 0) return list[randomInt(this.rng, list.length)];
        let point = randomFloat(this.rng) * total;
        for (const i of list) {
          point -= i.weight;
          if (point < 0) return i;
        }
        return list[list.length - 1];
      }
    }
  }

  /** Names of services with at least one instance. */
  services(): string[] {
    return [...this.index.keys()];
  }

  /** Node metadata from a member's record, if the member is known and live. */
  nodeMeta(node: string): Readonly<Record<string, string>> | undefined {
    return this.nodes.get(node)?.record.meta;
  }

  /** Instances across all services. */
  get size(): number {
    return this.instanceCount;
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

  private put(instance: Instance, type: 'added' | 'updated'): void {
    let idx = this.index.get(instance.service);
    if (idx === undefined) {
      idx = new ServiceIndex();
      this.index.set(instance.service, idx);
    }
    const key = keyOf(instance);
    if (!idx.byKey.has(key)) this.instanceCount++;
    idx.byKey.set(key, instance);
    idx.visible = undefined;
    idx.healthy = undefined;
    this.notify({ type, instance });
  }

  private remove(instance: Instance): void {
    const idx = this.index.get(instance.service);
    if (idx === undefined || !idx.byKey.delete(keyOf(instance))) return;
    this.instanceCount--;
    idx.visible = undefined;
    idx.healthy = undefined;
    if (idx.byKey.size === 0) this.index.delete(instance.service);
    this.notify({ type: 'removed', instance });
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

function makeInstance(node: string, host: string, s: ServiceRecord, suspect: boolean): Instance {
  return Object.freeze({
    id: s.id, service: s.name, node, address: s.address === '' ? host : s.address, port: s.port,
    tags: s.tags, meta: s.meta, weight: s.weight, health: s.health, suspect,
  });
}

function sameInstance(a: Instance, b: Instance): boolean {
  return a.service === b.service && a.address === b.address && a.port === b.port && a.weight === b.weight
    && a.health === b.health && a.suspect === b.suspect && sameList(a.tags, b.tags) && sameMeta(a.meta, b.meta);
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

/** The host part of a member address ("10.0.0.1:7946", "[::1]:7946"); other forms (simulated names) as they are. */
export function hostOf(addr: string): string {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    return end > 0 ? addr.slice(1, end) : addr;
  }
  const colon = addr.indexOf(':');
  return colon > 0 && addr.indexOf(':', colon + 1) < 0 ? addr.slice(0, colon) : addr;
}
