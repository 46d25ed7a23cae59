/**
 * Key-value replicas on simulated members: a KvStore and its KvSync (src/registry/kv*.ts) per
 * member, on the core the simulator already drives, wired as src/kv/room.ts wires them in the
 * runtime: the port is the member's app channel APP_CHANNELS.kv, the handler runs inside the
 * core's handle* calls (a stream request's answer becomes the reply frame), and anti-entropy
 * runs every `syncIntervalMs` with one random member this member holds alive. The store's wall
 * clock is the virtual clock. Nothing in engine.ts or cluster.ts changes: replicas follow the
 * engine's lifecycle hooks (a restart is a new core, so a new replica, empty unless `persist`).
 *
 * KvTraffic counts the bytes each kind of key-value message puts on the wire, read from the
 * frames themselves (an observing drop rule that drops nothing), so figures come from the
 * network model and not from what the sync code believes it sent.
 */
import { APP_CHANNELS } from '../src/core/app-channels.js';
import type { Membership } from '../src/core/membership.js';
import { scanValue, type ScanLimits } from '../src/core/msgpack-scan.js';
import { type Rng, randomInt, seededRng } from '../src/core/rng.js';
import { HEADER_BYTES, MessageType } from '../src/core/wire.js';
import { type KvChange, type KvRecord, KvStore } from '../src/registry/kv.js';
import { KvSync } from '../src/registry/kv-sync.js';
import type { Simulation, SimNode } from './engine.js';
import type { Frame } from './network.js';

const CHANNEL = APP_CHANNELS.kv;
/** As src/kv/room.ts: one anti-entropy round a second with one random live member. */
const SYNC_INTERVAL_MS = 1_000;
/** Random draws before falling back to scanning the whole member table for a live peer. */
const PEER_DRAWS_MAX = 8;

export interface SimKvOptions {
  /** Time between a member's anti-entropy rounds (default 1 s, as the runtime); 0 turns them off. */
  syncIntervalMs?: number;
  /** Keep a member's store across a restart, as a data directory would (default false: it starts empty). */
  persist?: boolean;
  tombstoneTtlMs?: number;
}

/** One member's replica, bound to one life (core) of it. */
export interface KvReplica {
  readonly name: string;
  readonly core: Membership;
  readonly store: KvStore;
  readonly sync: KvSync;
  /** False once this life stopped. */
  running: boolean;
}

export type KvChangeListener = (name: string, change: KvChange, nowMs: number) => void;

export class SimKv {
  private readonly replicas = new Map<string, KvReplica>();
  private readonly listeners = new Set<KvChangeListener>();
  private readonly names: string[] = [];
  private readonly rng: Rng;
  private readonly syncIntervalMs: number;
  private readonly persist: boolean;
  private readonly tombstoneTtlMs: number | undefined;
  private readonly detach: () => void;
  /** Peer input a replica dropped (malformed or out of bounds), by reason. */
  readonly drops = new Map<string, number>();

  constructor(private readonly sim: Simulation, options: SimKvOptions = {}) {
    this.rng = seededRng((sim.seed ^ 0x6b76_5eed) >>> 0);
    this.syncIntervalMs = options.syncIntervalMs ?? SYNC_INTERVAL_MS;
    this.persist = options.persist ?? false;
    this.tombstoneTtlMs = options.tombstoneTtlMs;
    this.detach = sim.onLifecycle((node, change) => {
      if (change === 'started') this.attach(node);
      else {
        const r = this.replicas.get(node.name);
        if (r !== undefined) r.running = false;
      }
    });
    for (const node of sim.nodes.values()) if (node.up) this.attach(node);
  }

  /** The replica of member `name`'s current life. */
  replica(name: string): KvReplica {
    const r = this.replicas.get(name);
    if (r === undefined) throw new Error(`no replica on ${name}`);
    return r;
  }

  all(): KvReplica[] {
    return [...this.replicas.values()];
  }

  /** A write at member `name`, spread as the runtime spreads it. */
  put(name: string, key: string, value: Uint8Array | string, flags: bigint | number = 0n): KvRecord {
    const r = this.replica(name);
    let record: KvRecord | undefined;
    this.sim.command(name, (_core, now) => {
      record = r.store.put(now, key, typeof value === 'string' ? new TextEncoder().encode(value) : value, flags);
      r.sync.spread([record]);
    });
    return record as KvRecord;
  }

  delete(name: string, key: string, recurse = false): KvRecord[] {
    const r = this.replica(name);
    let records: KvRecord[] = [];
    this.sim.command(name, (_core, now) => {
      records = r.store.delete(now, key, recurse);
      r.sync.spread(records);
    });
    return records;
  }

  /** Starts one anti-entropy round now from `name` with `peer` (by name), as the interval does. */
  antiEntropy(name: string, peer: string): void {
    const r = this.replica(name);
    const addr = this.sim.node(peer).addr;
    this.sim.command(name, () => startRound(r.sync, addr));
  }

  /** Calls `listener` with every change at any replica (local writes and merges). */
  onChange(listener: KvChangeListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Stops following the engine (replicas keep their handlers until their cores stop). */
  close(): void {
    this.detach();
  }

  private attach(node: SimNode): void {
    const core = node.core;
    if (!this.names.includes(node.name)) this.names.push(node.name);
    const old = this.replicas.get(node.name);
    const store = this.persist && old !== undefined ? old.store : new KvStore(node.name, this.tombstoneTtlMs);
    const sim = this.sim;
    const port = {
      get datagramBytesMax() { return core.appDatagramBytesMax; },
      get streamBytesMax() { return core.appStreamBytesMax; },
      broadcast: (key: string, payload: Uint8Array) => core.broadcastApp(sim.nowMs, CHANNEL, key, payload),
      send: (addr: string, payload: Uint8Array, stream: boolean) => core.sendApp(sim.nowMs, addr, CHANNEL, payload, stream),
      // As room.ts: only a live member is contacted on a peer's word. Names are addresses in the
      // simulator unless a restart moved a member, hence the scan as a fallback.
      isMember: (addr: string) => {
        const m = core.member(addr);
        if (m !== undefined && m.addr === addr) return m.state === 'alive';
        return core.members().some((x) => x.addr === addr && x.state === 'alive');
      },
    };
    const sync = new KvSync(store, port, (_from, reason) => this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1));
    const replica: KvReplica = { name: node.name, core, store, sync, running: true };
    // The virtual clock is every member's wall clock.
    core.onApp(CHANNEL, (nowMs, from, payload, kind) => sync.onMessage(nowMs, from, payload, kind));
    store.onChange((change) => {
      if (!replica.running) return;
      for (const l of this.listeners) l(node.name, change, sim.nowMs);
    });
    this.replicas.set(node.name, replica);
    if (this.syncIntervalMs > 0) {
      // A random phase, as members start at different times.
      this.scheduleSync(replica, sim.nowMs + randomInt(this.rng, this.syncIntervalMs) + 1);
    }
  }

  private scheduleSync(replica: KvReplica, atMs: number): void {
    this.sim.at(atMs, () => {
      if (!replica.running || this.replicas.get(replica.name) !== replica) return;
      const node = this.sim.node(replica.name);
      // A stalled event loop runs no interval; the next one comes as scheduled.
      if (node.pausedUntilMs <= this.sim.nowMs) {
        const addr = this.pickPeer(replica);
        if (addr !== undefined) this.sim.command(replica.name, () => startRound(replica.sync, addr));
      }
      this.scheduleSync(replica, this.sim.nowMs + this.syncIntervalMs);
    });
  }

  /** A member chosen uniformly among those `replica` holds alive (as room.ts does), drawn without listing the table. */
  private pickPeer(replica: KvReplica): string | undefined {
    const core = replica.core;
    for (let i = 0; i < PEER_DRAWS_MAX; i++) {
      const name = this.names[randomInt(this.rng, this.names.length)] as string;
      if (name === replica.name) continue;
      const m = core.member(name);
      if (m?.state === 'alive') return m.addr;
    }
    const peers = core.members().filter((m) => m.name !== replica.name && m.state === 'alive');
    return peers.length === 0 ? undefined : (peers[randomInt(this.rng, peers.length)] as { addr: string }).addr;
  }
}

/**
 * What room.ts does every interval: the root-digest probe (a datagram; a peer that disagrees
 * starts the round), or, with a kv-sync.ts that has no probe, the round itself.
 */
function startRound(sync: KvSync, addr: string): void {
  const s = sync as KvSync & { probe?: (addr: string) => void };
  if (typeof s.probe === 'function') s.probe(addr);
  else sync.syncWith(addr);
}

// ------------------------------------------------------------------ traffic

/** What a key-value message is for, by its op (kv-sync.ts). */
export type KvTrafficKind = 'gossip' | 'pull' | 'probe' | 'digests' | 'repair' | 'membership';
const OP_KIND: Record<number, KvTrafficKind> = {
  1: 'gossip', 2: 'gossip', // a record gossiped whole, or announced
  3: 'pull', 4: 'pull', // a large record pulled after an announcement
  5: 'probe', // the root digest: do we agree?
  10: 'digests', // the 256 bucket digests a round opens with
  11: 'repair', 12: 'repair', 13: 'repair', 14: 'repair', // the rest of a round: only when replicas differ
};

export interface KvTrafficCounts {
  gossip: number;
  pull: number;
  probe: number;
  digests: number;
  repair: number;
  /** Everything that is not on the kv channel (probes, acks, membership gossip, push-pull). */
  membership: number;
  frames: number;
}

const SCAN: ScanLimits = { depthMax: 8, arrayLengthMax: 10_000_000, stringBytesMax: 1 << 30, binaryBytesMax: 1 << 30 };

/**
 * Bytes put on the wire, split by what they carry. A frame's bytes go to the messages in it in
 * proportion to their sizes (the packet header shared), so a kv record piggybacked on a probe
 * counts its own bytes only, and a gossip packet carrying nothing else counts whole. Frames
 * dropped later by loss or a partition are counted: they were sent.
 */
export class KvTraffic {
  counts: KvTrafficCounts = zero();
  private readonly remove: () => void;

  constructor(sim: Simulation) {
    this.remove = sim.network.addDropRule((frame) => {
      this.observe(frame);
      return false;
    });
  }

  /** The counts so far, and starts again from zero. */
  take(): KvTrafficCounts {
    const c = this.counts;
    this.counts = zero();
    return c;
  }

  close(): void {
    this.remove();
  }

  private observe(frame: Frame): void {
    const b = frame.bytes;
    const c = this.counts;
    c.frames++;
    // Membership frames start with another type; push-pull states (large) are never scanned.
    if (b.length <= HEADER_BYTES || (frame.kind !== 'datagram' && appOp(b, HEADER_BYTES) === undefined)) {
      c.membership += b.length;
      return;
    }
    const parts: [KvTrafficKind, number][] = [];
    let body = 0;
    for (let pos = HEADER_BYTES; pos < b.length;) {
      const s = scanValue(b, pos, SCAN);
      if (!s.ok) {
        parts.push(['membership', b.length - pos]);
        body += b.length - pos;
        break;
      }
      const op = appOp(b, pos);
      parts.push([op === undefined ? 'membership' : OP_KIND[op] ?? 'repair', s.end - pos]);
      body += s.end - pos;
      pos = s.end;
    }
    for (const [kind, size] of parts) c[kind] += size + (HEADER_BYTES * size) / body;
  }
}

function zero(): KvTrafficCounts {
  return { gossip: 0, pull: 0, probe: 0, digests: 0, repair: 0, membership: 0, frames: 0 };
}

/** The kv op of the app message at `pos` ([12, channel, bin payload(, kind)]), or undefined if it is not one. */
function appOp(b: Uint8Array, pos: number): number | undefined {
  const head = b[pos] as number;
  if (head !== 0x93 && head !== 0x94) return undefined;
  if (b[pos + 1] !== MessageType.App || b[pos + 2] !== CHANNEL) return undefined;
  let at = pos + 3;
  const t = b[at] as number;
  if (t === 0xc4) at += 2;
  else if (t === 0xc5) at += 3;
  else if (t === 0xc6) at += 5;
  else return undefined;
  const arr = b[at] as number;
  if (arr >= 0x90 && arr <= 0x9f) at += 1;
  else if (arr === 0xdc) at += 3;
  else if (arr === 0xdd) at += 5;
  else return undefined;
  const op = b[at] as number;
  return op < 0x80 ? op : undefined;
}
