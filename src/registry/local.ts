/**
 * This node's own record: the services it registered and its node metadata. Every write
 * re-encodes the record, checks it against the core's limit before changing anything (an
 * oversized record is a typed error, never a truncation), hands it to the core, which spreads
 * it under the next version, and shows it in this node's own registry at once.
 */
import { OversizedError } from '../core/errors.js';
import type { Membership, MembershipEvent } from '../core/membership.js';
import { checkMeta, encodeRecord, type Health, type ServiceDefinition, type ServiceRecord, toServiceRecord } from './record.js';
import type { Registry } from './registry.js';

export class LocalRecord {
  private services = new Map<string, ServiceRecord>();

  private meta: Readonly<Record<string, string>> = {};

  constructor(
    private readonly core: Membership,
    private readonly registry: Registry,
  ) {
    this.showSelf();
  }

  /** Adds or replaces (same id) a service instance; returns its id. */
  register(nowMs: number, def: ServiceDefinition): string {
    const id = def?.id ?? this.defaultId(def?.name, def?.port);
    const record = toServiceRecord(def, id);
    const next = new Map(this.services);
    next.set(id, record);
    this.write(nowMs, next, this.meta);
    return id;
  }

  /** Removes an instance; false if this node has none with that id. */
  deregister(nowMs: number, id: string): boolean {
    if (!this.services.has(id)) return false;
    const next = new Map(this.services);
    next.delete(id);
    this.write(nowMs, next, this.meta);
    return true;
  }

  /** Sets an instance's health (health checks call this); a no-op if unchanged or unknown. */
  setHealth(nowMs: number, id: string, health: Health): void {
    const s = this.services.get(id);
    if (s === undefined || s.health === health) return;
    const next = new Map(this.services);
    next.set(id, { ...s, health });
    this.write(nowMs, next, this.meta);
  }

  setNodeMeta(nowMs: number, meta: Readonly<Record<string, string>>): void {
    this.write(nowMs, this.services, checkMeta(meta, 'meta'));
  }

  has(id: string): boolean {
    return this.services.has(id);
  }

  /** Routes a membership event to the registry (drivers call this for every event they drain). */
  handleEvent(e: MembershipEvent): void {
    if ('member' in e) this.registry.applyMember(e.member);
  }

  private defaultId(name: unknown, port: unknown): string {
    const base = String(name);
    return this.services.has(base) && this.services.get(base)?.port !== port ? `${base}-${String(port)}` : base;
  }

  private write(nowMs: number, services: Map<string, ServiceRecord>, meta: Readonly<Record<string, string>>): void {
    const bytes = encodeRecord({ meta, services: [...services.values()] });
    const limit = this.core.config.recordBytesMax;
    if (bytes.length > limit) throw new OversizedError('record', bytes.length, limit);
    this.core.setLocalRecord(nowMs, bytes);
    this.services = services;
    this.meta = meta;
    this.showSelf();
  }

  private showSelf(): void {
    const self = this.core.member(this.core.name);
    if (self !== undefined) this.registry.applyMember(self);
  }
}
