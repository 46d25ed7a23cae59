/**
 * The key-value store, one replica per member (pure: time comes in with each call). There are no
 * servers, so no consensus: every key is a register replicated to every member, and concurrent
 * writes resolve by last writer wins under a hybrid logical clock, the writer's name breaking
 * ties. That is a total order, so merging is a semilattice join and every replica that has heard
 * the same writes holds the same map, whatever the order it heard them in. A delete is a
 * tombstone, ordered like a write, kept `tombstoneTtlMs` so anti-entropy cannot bring the key
 * back (Cassandra's gc_grace: a replica away longer than that may), then collected.
 *
 * Replicas compare themselves by digests (kv-sync.ts): each entry hashes to 8 bytes, its key's
 * hash picks one of 256 buckets and one of 256 sub-buckets in it, and a bucket's digest is the
 * XOR of its entries' hashes, kept up to date on every change.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { InvalidOptionError, OversizedError } from '../core/errors.js';

/** Consul's limits: keys up to 512 bytes of UTF-8, values up to 512 KiB, flags a uint64. */
export const KV_KEY_BYTES_MAX = 512;
export const KV_VALUE_BYTES_MAX = 512 * 1024;
const FLAGS_MAX = (1n << 64n) - 1n;
export const BUCKETS = 256;

/** When a write happened: hybrid logical clock time (wall ms, then a counter), then the writer's name. */
export interface Stamp {
  wall: number;
  counter: number;
  writer: string;
}

/** A key's register as replicas exchange it. */
export interface KvRecord extends Stamp {
  key: string;
  value: Uint8Array;
  flags: bigint;
  deleted: boolean;
}

/** A key as this replica holds it: the register, and this replica's change indexes for it (Consul's CreateIndex, ModifyIndex). */
export interface KvEntry extends KvRecord {
  createIndex: number;
  modifyIndex: number;
}

interface Held extends KvEntry {
  hash: Uint8Array;
  bucket: number;
  sub: number;
  /** Replica time a tombstone was made here, for collection. */
  deletedAtMs: number;
}

export type KvChange = { key: string; entry: KvEntry };

/** Whether `a` was written after `b` (equal stamps: neither). */
export function laterThan(a: Stamp, b: Stamp): boolean {
  if (a.wall !== b.wall) return a.wall > b.wall;
  if (a.counter !== b.counter) return a.counter > b.counter;
  return a.writer > b.writer;
}

/**
 * Whether register `a` replaces `b`: the later stamp, and for equal stamps (one writer never
 * makes two; a faulty or hostile one might) the tombstone, then the larger value, so the order
 * is total and every replica picks the same.
 */
export function supersedes(a: KvRecord, b: KvRecord): boolean {
  if (laterThan(a, b)) return true;
  if (laterThan(b, a)) return false;
  if (a.deleted !== b.deleted) return a.deleted;
  if (a.flags !== b.flags) return a.flags > b.flags;
  return compareBytes(a.value, b.value) > 0;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

const encoder = new TextEncoder();

export function checkKey(key: unknown, option = 'key'): asserts key is string {
  if (typeof key !== 'string' || key === '') throw new InvalidOptionError(option, 'must be a non-empty string');
  const bytes = encoder.encode(key).length;
  if (bytes > KV_KEY_BYTES_MAX) throw new OversizedError('key', bytes, KV_KEY_BYTES_MAX);
}

export function checkFlags(flags: unknown): bigint {
  if (flags === undefined) return 0n;
  const f = typeof flags === 'bigint' ? flags : typeof flags === 'number' && Number.isSafeInteger(flags) ? BigInt(flags) : undefined;
  if (f === undefined || f < 0n || f > FLAGS_MAX) throw new InvalidOptionError('flags', 'must be an integer in 0..2^64-1 (a bigint above 2^53)');
  return f;
}

export class KvStore {
  private readonly held = new Map<string, Held>();
  private readonly buckets: Set<string>[] = Array.from({ length: BUCKETS }, () => new Set());
  /** Each bucket's digest: the XOR of its entries' hashes, 8 bytes each. */
  readonly digests = new Uint8Array(BUCKETS * 8);
  private readonly listeners = new Set<(change: KvChange) => void>();
  private clockWall = 0;
  private clockCounter = 0;
  private changeIndex = 0;
  private liveCount = 0;

  constructor(
    /** This replica's writer name (the member's name). */
    readonly writer: string,
    readonly tombstoneTtlMs = 72 * 3_600_000,
  ) {}

  /** One more with every change this replica makes or merges. */
  get index(): number {
    return this.changeIndex;
  }

  /** Live keys (tombstones not counted). */
  get size(): number {
    return this.liveCount;
  }

  get(key: string): KvEntry | undefined {
    const h = this.held.get(key);
    return h === undefined || h.deleted ? undefined : view(h);
  }

  /** Live entries whose key starts with `prefix`, sorted by key. */
  list(prefix = ''): KvEntry[] {
    const out: KvEntry[] = [];
    for (const h of this.held.values()) if (!h.deleted && h.key.startsWith(prefix)) out.push(view(h));
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** The largest modify index among keys under `prefix` (`exact`: that key only), tombstones included; the store's index if none. */
  indexOf(prefix: string, exact: boolean): number {
    if (exact) return this.held.get(prefix)?.modifyIndex ?? this.changeIndex;
    let max = -1;
    for (const h of this.held.values()) if (h.key.startsWith(prefix) && h.modifyIndex > max) max = h.modifyIndex;
    return max < 0 ? this.changeIndex : max;
  }

  /** A write here: the new register, to spread. `wallMs` is the wall clock (the store has none). */
  put(wallMs: number, key: string, value: Uint8Array, flags: bigint | number = 0n): KvRecord {
    checkKey(key);
    if (!(value instanceof Uint8Array)) throw new InvalidOptionError('value', 'must be a Uint8Array or a string');
    if (value.length > KV_VALUE_BYTES_MAX) throw new OversizedError('value', value.length, KV_VALUE_BYTES_MAX);
    const record: KvRecord = { key, value: Uint8Array.from(value), flags: checkFlags(flags), deleted: false, ...this.tick(wallMs) };
    this.apply(wallMs, record);
    return record;
  }

  /** Deletes `key` (with `recurse`, every key it prefixes): the tombstones, to spread. */
  delete(wallMs: number, key: string, recurse = false): KvRecord[] {
    checkKey(key);
    const keys = recurse ? this.list(key).map((e) => e.key) : this.get(key) === undefined ? [] : [key];
    return keys.map((k) => {
      const record: KvRecord = { key: k, value: new Uint8Array(0), flags: 0n, deleted: true, ...this.tick(wallMs) };
      this.apply(wallMs, record);
      return record;
    });
  }

  /** A register from another replica: kept if later than what is held. True if it changed anything. */
  merge(wallMs: number, record: KvRecord): boolean {
    this.witness(record);
    const held = this.held.get(record.key);
    if (held !== undefined && !supersedes(record, held)) return false;
    this.apply(wallMs, record);
    return true;
  }

  /** The register held for `key`, tombstones included, for anti-entropy. */
  record(key: string): KvRecord | undefined {
    const h = this.held.get(key);
    return h === undefined ? undefined : toRecord(h);
  }

  /** Keys in bucket `bucket`, tombstones included. */
  keysIn(bucket: number): ReadonlySet<string> {
    return this.buckets[bucket] ?? new Set();
  }

  /** Bucket `bucket`'s 256 sub-bucket digests (8 bytes each), computed now. */
  subDigests(bucket: number): Uint8Array {
    const out = new Uint8Array(BUCKETS * 8);
    for (const k of this.keysIn(bucket)) {
      const h = this.held.get(k) as Held;
      xorInto(out, h.sub * 8, h.hash);
    }
    return out;
  }

  /** The 8-byte content hash of the register held for `key`. */
  hashOf(key: string): Uint8Array | undefined {
    return this.held.get(key)?.hash;
  }

  /** bucket * 256 + sub-bucket of a key held (tombstones included), -1 if none. */
  placeOf(key: string): number {
    const h = this.held.get(key);
    return h === undefined ? -1 : h.bucket * BUCKETS + h.sub;
  }

  /** Which sub-bucket of which bucket a key falls in. */
  static place(key: string): { bucket: number; sub: number } {
    const kh = sha256(encoder.encode(key));
    return { bucket: kh[0] as number, sub: kh[1] as number };
  }

  /** Removes tombstones older than the TTL. Returns how many. */
  collect(nowMs: number): number {
    let n = 0;
    for (const h of this.held.values()) {
      if (!h.deleted || nowMs - h.deletedAtMs < this.tombstoneTtlMs) continue;
      this.unplace(h);
      this.held.delete(h.key);
      n++;
    }
    return n;
  }

  /** Calls `listener` with every change (merged or local). Returns the unsubscribe function. */
  onChange(listener: (change: KvChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every register held, tombstones included (to persist, or for tests). */
  records(): KvRecord[] {
    return [...this.held.values()].map(toRecord);
  }

  /** HLC: a stamp after every one this replica has made or heard. */
  private tick(wallMs: number): Stamp {
    const wall = Math.floor(wallMs);
    if (wall > this.clockWall) {
      this.clockWall = wall;
      this.clockCounter = 0;
    } else this.clockCounter++;
    return { wall: this.clockWall, counter: this.clockCounter, writer: this.writer };
  }

  private witness(s: Stamp): void {
    if (s.wall > this.clockWall || (s.wall === this.clockWall && s.counter > this.clockCounter)) {
      this.clockWall = s.wall;
      this.clockCounter = s.counter;
    }
  }

  private apply(nowMs: number, record: KvRecord): void {
    const old = this.held.get(record.key);
    if (old !== undefined) this.unplace(old);
    this.changeIndex++;
    const { bucket, sub } = old ?? KvStore.place(record.key);
    const created = old === undefined || old.deleted ? this.changeIndex : old.createIndex;
    const h: Held = {
      ...record, createIndex: created, modifyIndex: this.changeIndex, hash: entryHash(record), bucket, sub, deletedAtMs: record.deleted ? nowMs : 0,
    };
    this.held.set(record.key, h);
    this.buckets[bucket]?.add(record.key);
    xorInto(this.digests, bucket * 8, h.hash);
    if (!h.deleted) this.liveCount++;
    const change = { key: record.key, entry: view(h) };
    for (const l of this.listeners) l(change);
  }

  private unplace(h: Held): void {
    xorInto(this.digests, h.bucket * 8, h.hash);
    this.buckets[h.bucket]?.delete(h.key);
    if (!h.deleted) this.liveCount--;
  }
}

/** 8 bytes naming a register's whole content, so replicas that differ in anything see different digests. */
function entryHash(r: KvRecord): Uint8Array {
  const head = encoder.encode(`${r.key}\u0000${r.wall}\u0000${r.counter}\u0000${r.writer}\u0000${r.deleted ? 1 : 0}\u0000${r.flags}\u0000`);
  const all = new Uint8Array(head.length + r.value.length);
  all.set(head);
  all.set(r.value, head.length);
  return sha256(all).subarray(0, 8);
}

function xorInto(target: Uint8Array, at: number, hash: Uint8Array): void {
  for (let i = 0; i < 8; i++) target[at + i] = (target[at + i] as number) ^ (hash[i] as number);
}

function toRecord(h: Held): KvRecord {
  return { key: h.key, value: h.value, flags: h.flags, deleted: h.deleted, wall: h.wall, counter: h.counter, writer: h.writer };
}

function view(h: Held): KvEntry {
  return { ...toRecord(h), createIndex: h.createIndex, modifyIndex: h.modifyIndex };
}
