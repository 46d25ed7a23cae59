/**
 * How key-value replicas (kv.ts) reach each other, over one app channel (pure: the driver gives
 * the channel, the time, and whom to sync with).
 *
 * - A write small enough rides on gossip whole, and every replica that finds it new gossips it
 *   on. A larger one is announced (key and stamp); a replica that finds the announcement new
 *   pulls the value over a stream from whoever announced it, then announces it in turn.
 * - Anti-entropy, with one peer at a time: a datagram with the XOR of all digests asks whether
 *   the peer agrees; one that does not starts a round: it sends its 256 bucket digests; the other
 *   answers the sub-bucket digests of the buckets that differ; the first sends what it holds
 *   in the sub-buckets that differ (keys and stamps only); the other answers the registers it has
 *   later or the first lacks, and names those it wants, which the first then pushes. Two
 *   replicas that agree exchange 9 bytes; one key apart, about 6 KiB and that key.
 *
 * Everything a peer sends is scanned with bounds before it is decoded, and every register is
 * checked as a local write would be; bad input is dropped and counted, never thrown.
 */
import { Packr } from 'msgpackr/pack';
import { Unpackr } from 'msgpackr/unpack';
import { scanValue } from '../core/msgpack-scan.js';
import { isPrintable } from '../core/wire.js';
import { BUCKETS, checkFlags, checkKey, KV_VALUE_BYTES_MAX, type KvRecord, type KvStore, laterThan, type Stamp } from './kv.js';

/** What the replica sends through: the member's channel. */
export interface KvPort {
  readonly datagramBytesMax: number;
  readonly streamBytesMax: number;
  broadcast(key: string, payload: Uint8Array): void;
  send(addr: string, payload: Uint8Array, stream: boolean): void;
  /** Whether `addr` is a live member's: only those are ever contacted on a peer's word (no reflection toward others). */
  isMember(addr: string): boolean;
}

const Op = { Gossip: 1, Announce: 2, Pull: 3, Records: 4, Root: 5, Digests: 10, Buckets: 11, Summaries: 12, Diff: 13, Push: 14 } as const;

/** A write whose encoding is at most this rides on gossip whole; a larger one is announced and pulled. */
const GOSSIP_RECORD_BYTES_MAX = 1_024;
const NAME_BYTES_MAX = 256;

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false });

export interface KvSyncStats {
  gossiped: number;
  merged: number;
  pulled: number;
  syncs: number;
  syncedRecords: number;
  dropped: number;
}

type Wire = [string, Uint8Array, string, number, number, string, boolean];

export class KvSync {
  readonly stats: KvSyncStats = { gossiped: 0, merged: 0, pulled: 0, syncs: 0, syncedRecords: 0, dropped: 0 };

  constructor(
    private readonly store: KvStore,
    private readonly port: KvPort,
    /** Told of peer input that was dropped, with why. */
    private readonly onDrop: (from: string, reason: string) => void = () => undefined,
  ) {}

  /** After local writes: spread them. */
  spread(records: readonly KvRecord[]): void {
    for (const r of records) this.gossip(r);
  }

  /**
   * Asks the replica at `addr` whether it agrees, in one datagram: the XOR of every bucket
   * digest. One that does not starts a round with us, so replicas that agree cost 9 bytes.
   */
  probe(addr: string): void {
    this.port.send(addr, pack([Op.Root, root(this.store.digests)]), false);
  }

  /** Starts an anti-entropy round with the replica at `addr`. */
  syncWith(addr: string): void {
    this.stats.syncs++;
    this.port.send(addr, pack([Op.Digests, this.store.digests]), true);
  }

  /** A message on the channel; for a stream request, returns the answer. */
  onMessage(wallMs: number, from: string, payload: Uint8Array, kind: 'datagram' | 'request' | 'reply'): Uint8Array | undefined {
    const m = decode(payload);
    if (m === undefined) return this.drop(from, 'kv-malformed');
    try {
      return this.handle(wallMs, from, m, kind);
    } catch (e) {
      return this.drop(from, `kv-bad-field: ${(e as Error).message}`);
    }
  }

  private handle(wallMs: number, from: string, m: unknown[], kind: 'datagram' | 'request' | 'reply'): Uint8Array | undefined {
    const store = this.store;
    switch (m[0]) {
      case Op.Gossip: {
        for (const r of records(m[1])) if (this.merge(wallMs, r)) this.gossip(r);
        return undefined;
      }
      case Op.Announce: {
        const key = m[1];
        checkKey(key);
        const stamp = { wall: int(m[2]), counter: int(m[3]), writer: name(m[4]) };
        const held = store.record(key);
        if ((held === undefined || laterThan(stamp, held)) && this.port.isMember(from)) this.port.send(from, pack([Op.Pull, key]), true);
        return undefined;
      }
      case Op.Pull: {
        if (kind !== 'request') return undefined;
        const r = store.record(str(m[1]));
        return r === undefined ? undefined : pack([Op.Records, [wire(r)]]);
      }
      case Op.Records: {
        for (const r of records(m[1])) {
          if (!this.merge(wallMs, r)) continue;
          this.stats.pulled++;
          this.gossip(r);
        }
        return undefined;
      }
      case Op.Root: {
        if (kind !== 'datagram') return undefined;
        if (!sameAt(bin(m[1], 8), root(store.digests), 0) && this.port.isMember(from)) this.syncWith(from);
        return undefined;
      }
      case Op.Digests: {
        if (kind !== 'request') return undefined;
        const theirs = bin(m[1], BUCKETS * 8);
        const ours = store.digests;
        const differing: [number, Uint8Array][] = [];
        let bytes = 0;
        for (let b = 0; b < BUCKETS; b++) {
          if (!sameAt(ours, theirs, b * 8)) {
            if (bytes + BUCKETS * 8 > this.port.streamBytesMax / 2) break;
            differing.push([b, store.subDigests(b)]);
            bytes += BUCKETS * 8 + 8;
          }
        }
        return differing.length === 0 ? undefined : pack([Op.Buckets, differing]);
      }
      case Op.Buckets: {
        if (!Array.isArray(m[1])) throw new Error('buckets');
        const places: [number, number][] = [];
        const summaries: [string, number, number, string, Uint8Array][] = [];
        for (const item of m[1] as unknown[]) {
          if (!Array.isArray(item)) throw new Error('bucket');
          const b = int(item[0]);
          if (b >= BUCKETS) throw new Error('bucket number');
          const theirs = bin(item[1], BUCKETS * 8);
          const ours = store.subDigests(b);
          for (let s = 0; s < BUCKETS; s++) if (!sameAt(ours, theirs, s * 8)) places.push([b, s]);
        }
        const wanted = new Set(places.map(([b, s]) => b * BUCKETS + s));
        for (const b of new Set(places.map(([bucket]) => bucket))) {
          for (const k of store.keysIn(b)) {
            if (!wanted.has(store.placeOf(k))) continue;
            const r = store.record(k) as KvRecord;
            summaries.push([r.key, r.wall, r.counter, r.writer, store.hashOf(k) as Uint8Array]);
          }
        }
        if (places.length > 0) this.port.send(from, pack([Op.Summaries, places, summaries]), true);
        return undefined;
      }
      case Op.Summaries: {
        if (kind !== 'request' || !Array.isArray(m[1]) || !Array.isArray(m[2])) throw new Error('summaries');
        const places = new Set<number>();
        for (const p of m[1] as unknown[]) {
          if (!Array.isArray(p)) throw new Error('place');
          places.add(int(p[0]) * BUCKETS + int(p[1]));
        }
        const theirs = new Map<string, Stamp & { hash: Uint8Array }>();
        const wants: string[] = [];
        for (const sm of m[2] as unknown[]) {
          if (!Array.isArray(sm)) throw new Error('summary');
          const key = str(sm[0]);
          const stamp = { wall: int(sm[1]), counter: int(sm[2]), writer: name(sm[3]), hash: bin(sm[4], 8) };
          theirs.set(key, stamp);
          const held = store.record(key);
          if (held === undefined || laterThan(stamp, held) || (!laterThan(held, stamp) && !sameAt(stamp.hash, store.hashOf(key) as Uint8Array, 0))) wants.push(key);
        }
        // Ours, in the places compared, that they lack or hold older.
        const send: Wire[] = [];
        let bytes = 0;
        for (const pl of places) {
          for (const k of store.keysIn(Math.floor(pl / BUCKETS) % BUCKETS)) {
            if (store.placeOf(k) !== pl) continue;
            const r = store.record(k) as KvRecord;
            const t = theirs.get(k);
            // Theirs is as late and the same (equal stamps that differ, which only a faulty writer makes, go both ways).
            if (t !== undefined && !laterThan(r, t) && (laterThan(t, r) || sameAt(t.hash, store.hashOf(k) as Uint8Array, 0))) continue;
            bytes += r.key.length + r.value.length + 64;
            if (bytes > this.port.streamBytesMax / 2) break;
            send.push(wire(r));
          }
        }
        this.stats.syncedRecords += send.length;
        return pack([Op.Diff, send, wants]);
      }
      case Op.Diff: {
        for (const r of records(m[1])) if (this.merge(wallMs, r)) this.stats.syncedRecords++;
        if (!Array.isArray(m[2])) throw new Error('wants');
        const push: Wire[] = [];
        let bytes = 0;
        for (const k of m[2] as unknown[]) {
          const r = store.record(str(k));
          if (r === undefined) continue;
          bytes += r.key.length + r.value.length + 64;
          if (bytes > this.port.streamBytesMax / 2) break;
          push.push(wire(r));
        }
        if (push.length > 0) this.port.send(from, pack([Op.Push, push]), true);
        return undefined;
      }
      case Op.Push: {
        for (const r of records(m[1])) if (this.merge(wallMs, r)) this.stats.syncedRecords++;
        return undefined;
      }
      default:
        return this.drop(from, 'kv-unknown-op');
    }
  }

  private merge(wallMs: number, r: KvRecord): boolean {
    const applied = this.store.merge(wallMs, r);
    if (applied) this.stats.merged++;
    return applied;
  }

  /** Gossips a register whole when small, else its announcement. */
  private gossip(r: KvRecord): void {
    this.stats.gossiped++;
    const whole = pack([Op.Gossip, [wire(r)]]);
    if (whole.length <= Math.min(GOSSIP_RECORD_BYTES_MAX, this.port.datagramBytesMax)) this.port.broadcast(r.key, whole);
    else this.port.broadcast(r.key, pack([Op.Announce, r.key, r.wall, r.counter, r.writer]));
  }

  private drop(from: string, reason: string): undefined {
    this.stats.dropped++;
    this.onDrop(from, reason);
    return undefined;
  }
}

function pack(v: unknown[]): Uint8Array {
  return packr.pack(v);
}

function decode(payload: Uint8Array): unknown[] | undefined {
  const scanned = scanValue(payload, 0, { depthMax: 4, arrayLengthMax: 1_000_000, stringBytesMax: 4_096, binaryBytesMax: KV_VALUE_BYTES_MAX });
  if (!scanned.ok || scanned.end !== payload.length) return undefined;
  try {
    const v: unknown = unpackr.unpack(payload);
    return Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function wire(r: KvRecord): Wire {
  return [r.key, r.value, r.flags.toString(), r.wall, r.counter, r.writer, r.deleted];
}

/** A register as a tuple, as peers exchange it (a snapshot on disk holds these too). */
export function recordToTuple(r: KvRecord): unknown[] {
  return wire(r);
}

/** Registers from their tuples, each checked as a peer's; throws on the first bad one. */
export function recordsFromTuples(v: unknown): KvRecord[] {
  return records(v);
}

/** Registers in a list as a peer sent them, each checked as a local write is; throws on the first bad one. */
function records(v: unknown): KvRecord[] {
  if (!Array.isArray(v)) throw new Error('records');
  return v.map((w: unknown) => {
    if (!Array.isArray(w) || w.length < 7) throw new Error('record');
    const [key, value, flags, wall, counter, writer, deleted] = w as unknown[];
    checkKey(key);
    if (!(value instanceof Uint8Array) || value.length > KV_VALUE_BYTES_MAX) throw new Error('value');
    if (typeof flags !== 'string' || !/^\d{1,20}$/.test(flags)) throw new Error('flags');
    if (typeof deleted !== 'boolean') throw new Error('deleted');
    return { key, value: Uint8Array.from(value), flags: checkFlags(BigInt(flags)), wall: int(wall), counter: int(counter), writer: name(writer), deleted };
  });
}

function int(x: unknown): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw new Error('not an unsigned integer');
  return x;
}

function str(x: unknown): string {
  checkKey(x);
  return x;
}

function name(x: unknown): string {
  if (typeof x !== 'string' || x === '' || x.length > NAME_BYTES_MAX || !isPrintable(x)) throw new Error('writer');
  return x;
}

function bin(x: unknown, length: number): Uint8Array {
  if (!(x instanceof Uint8Array) || x.length !== length) throw new Error('digests');
  return x;
}

/** Every bucket digest XORed together: equal stores, equal roots. */
function root(digests: Uint8Array): Uint8Array {
  const out = new Uint8Array(8);
  for (let i = 0; i < digests.length; i++) out[i % 8] = (out[i % 8] as number) ^ (digests[i] as number);
  return out;
}

function sameAt(a: Uint8Array, b: Uint8Array, at: number): boolean {
  for (let i = at; i < at + 8; i++) if (a[i] !== b[i]) return false;
  return true;
}
