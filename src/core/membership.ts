/**
 * The membership state machine: SWIM failure detection and gossip dissemination with the
 * Lifeguard refinements, as a pure ("sans-IO") core.
 *
 * Theory of operation
 * -------------------
 * Inputs are `handle*` calls that carry the current time; the core never reads a clock, arms a
 * timer, draws randomness except from the injected Rng, or touches a socket. After any input a
 * driver drains, in this order:
 *   1. `pollTransmit()` until undefined: datagrams (and stream requests) to send;
 *   2. `pollEvent()` until undefined: member changes, health changes, diagnostics;
 *   3. `pollTimeoutMs()`: the earliest deadline; call `handleTimeout(now)` once it has passed.
 * A stream request (`stream: true`) is one frame over a reliable connection; the peer's driver
 * passes it to `handleStream`, which may return one reply frame, which the requester's driver
 * hands to its own `handleStream`.
 *
 * Failure detection. Every probe interval (scaled by local health) the core pings the next member
 * of a shuffled round-robin order. No ack within the probe timeout: it asks `indirectChecks`
 * random members to ping-req the target (each returns the ack, or a nack if the target stays
 * silent) and tries one ping over the stream path. No ack by the end of the interval: the target
 * becomes *suspect*. A suspicion is declared *dead* when its timeout runs out; the timeout starts
 * long and shrinks as other members confirm it (Lifeguard). A member that hears it is suspected
 * refutes by re-announcing itself alive with a higher incarnation.
 *
 * Local health (Lifeguard). Failed probes without the nacks that prove the path is fine, and
 * refutations, raise a score that stretches this node's probe interval and timeouts; successful
 * probes lower it. A timer that fires far past its deadline means this node was stalled: before
 * accusing anyone it waits once more, briefly, so input that queued during the stall lands first.
 *
 * Dissemination. Every state change is queued once per member and piggybacked on every outgoing
 * packet and on gossip rounds to a few random members, up to λ·log(n) times (broadcast-queue.ts).
 * Push-pull exchanges the whole table with one random member now and then (and with the seeds on
 * join) so anything gossip missed heals; a dead member is also contacted, so long partitions
 * heal without operator action.
 *
 * State transitions per member follow members.ts: higher incarnation wins, and at equal
 * incarnation left > dead > suspect > alive.
 */
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { type Config, type ConfigOptions, pushPullIntervalMs, resolveConfig, retransmitLimit, suspicionTimeoutsMs } from './config.js';
import { InvalidOptionError, InvalidStateError, OversizedError } from './errors.js';
import { EMPTY_HELD_RECORD, type HeldRecord, MemberTable } from './member-table.js';
import { bytesEqual, identityNewer, livenessNewer, STATE_NAMES, type MemberInfo } from './members.js';
import { Fifo } from './fifo.js';
import { intern } from './intern.js';
import { type Rng, randomInt, shuffle } from './rng.js';
import { isSealed, type Keyring, SEAL_OVERHEAD_BYTES } from './seal.js';
import { Suspicion } from './suspicion.js';
import { type Timer, TimerHeap } from './timers.js';
import {
  type AliveMessage, buildPacket, decodePacket, EMPTY_BYTES, encodeMessage, encodePacket, HEADER_BYTES, MemberState,
  type Message, MessageType, recordDigest, type PushPullEntry, type PushPullMessage, utf8Length, type WireLimits,
} from './wire.js';

export interface MembershipOptions {
  /** This member's unique name in the cluster. */
  name: string;
  /** The address peers should send to (opaque to the core; the driver understands it). */
  addr: string;
  /**
   * This member's record: opaque bytes (the registry's encoded services), at most
   * `config.recordBytesMax`. Up to `recordInlineBytesMax` it rides on gossip; larger ones are
   * announced by digest and pulled over the stream path.
   */
  record?: Uint8Array;
  /** A profile name and overrides, or an already resolved config. */
  config?: ConfigOptions;
  rng: Rng;
  /** Current time; all later times passed in must not go backwards. */
  nowMs: number;
  /** Starting incarnation. A restarted member also recovers a higher one by refutation. */
  incarnation?: number;
  /**
   * Encrypts every packet and frame; unsealed or wrongly sealed input is dropped. The core reads
   * the ring on every packet, so add/use/remove on it take effect at once (live rotation).
   */
  keyring?: Keyring;
}

/** Bytes to send. `stream` means one frame over a reliable connection (TCP in the runtime). */
export interface Transmit {
  addr: string;
  bytes: Uint8Array;
  stream: boolean;
}

export type MemberChange = 'joined' | 'suspect' | 'alive' | 'dead' | 'left' | 'updated';

export type MembershipEvent =
  | { type: MemberChange; member: MemberInfo }
  /** Local health score changed (0 is healthy). */
  | { type: 'health'; score: number }
  /** Peer input was rejected; it changed no state. */
  | { type: 'dropped'; from: string; reason: string; detail?: string }
  /** Another process claims this member's name from `otherAddr`; this node refuted it. */
  | { type: 'conflict'; name: string; addr: string; otherAddr: string }
  /** A push-pull state from `from` was merged (`join`: it answered our join request). */
  | { type: 'synced'; from: string; join: boolean; members: number }
  /** After leave(): the left message has been sent its full number of times (or there is nobody to tell). */
  | { type: 'leave-disseminated' };

export interface MembershipStats {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  streamsOut: number;
  /** Peer inputs rejected, by reason. */
  dropped: Record<string, number>;
  /** Events discarded because the driver did not drain them. */
  eventsDropped: number;
}

type TimerKind =
  | { kind: 'probe'; deferred: boolean }
  | { kind: 'probe-ack'; deferred: boolean }
  | { kind: 'gossip' }
  | { kind: 'push-pull' }
  | { kind: 'suspicion'; name: string; deferred: boolean }
  | { kind: 'relay'; seq: number }
  | { kind: 'pull'; name: string };

/** A member's slot in the table (member-table.ts); slot 0 is this member. */
type Slot = number;

interface Probe {
  /** The probed member's name: its slot may move if another member is removed meanwhile. */
  target: string;
  seq: number;
  acked: boolean;
  indirect: boolean;
  nacksExpected: number;
  nacksReceived: number;
  ackTimer: Timer<TimerKind> | undefined;
}

interface Relay {
  requesterAddr: string;
  requesterSeq: number;
  nack: boolean;
}

interface ActiveSuspicion {
  suspicion: Suspicion;
  timer: Timer<TimerKind>;
}

/** Longest address accepted from a peer, in bytes: a bracketed IPv6 address with zone and port fits. */
const ADDR_BYTES_MAX = 128;
/** Ping-reqs this node relays at once; more are dropped so a flood cannot grow memory. */
const RELAYS_MAX = 1_024;
/** A timer that fires later than this fraction of the probe timeout means the event loop stalled. */
const STALL_FRACTION = 0.5;
/** After a stall, accusing timers wait this long once more so queued input is processed first. */
const STALL_GRACE_MS = 5;
/** A graceful leave is sent directly to this many live members, besides being gossiped. */
const LEAVE_DIRECT_MAX = 64;
/** The first push-pull after a join comes this many gossip intervals later (1 s on LAN). */
const JOIN_SYNC_FACTOR = 5;
/** Join-time push-pulls that teach nothing, in a row, before the regular period resumes. */
const JOIN_SYNC_QUIET_MAX = 3;
/** Record pulls in flight at once; the rest wait their turn. */
const PULLS_MAX = 16;
/** A record pull unanswered after this many probe intervals is retried from the owner (then dropped). */
const PULL_TIMEOUT_PROBES = 2;
const SELF: Slot = 0;

export class Membership {
  readonly config: Readonly<Config>;
  readonly name: string;
  private readonly rng: Rng;
  private readonly keyring: Keyring | undefined;
  /** Largest plaintext packet: the payload budget less any sealing overhead. */
  private readonly packetBytesMax: number;
  private readonly table = new MemberTable();
  private readonly suspicions = new Map<string, ActiveSuspicion>();
  private readonly awareness: Awareness;
  private readonly broadcasts = new BroadcastQueue();
  private readonly timers = new TimerHeap<TimerKind>();
  private readonly relays = new Map<number, Relay>();
  /** Record pulls in flight, by member name. */
  private readonly pulls = new Map<string, { addr: string; timer: Timer<TimerKind> }>();
  /** Members whose record is wanted, in order, with who offered it (the owner is asked if they fail). */
  private readonly pullsWaiting = new Map<string, string>();
  private readonly datagramLimits: WireLimits;
  private readonly streamLimits: WireLimits;
  /** Members that became dead or left, oldest first, with the time they did. */
  private readonly tombstones: { name: string; sinceMs: number }[] = [];
  private tombstoneHead = 0;
  /** Slots in shuffled round-robin order; -1 marks a member removed mid-round. */
  private probeOrder: Slot[] = [];
  private probeIndex = 0;
  private probe: Probe | undefined;
  private pushPullTimer: Timer<TimerKind> | undefined;
  /**
   * After a join, push-pull runs at growing intervals (1x, 2x, 4x ... the gossip interval times
   * JOIN_SYNC_FACTOR) until it reaches the regular one. Members that join together learn of each
   * other only by gossip, whose retransmits are spent on the few members each knows at first;
   * a few early full-state exchanges close those gaps in seconds instead of a push-pull period.
   * JOIN_SYNC_QUIET_MAX exchanges in a row that teach nothing new end this early: one alone is
   * not enough, as the random peer may lack the same members (seen in simulation: a member then
   * waited for the regular 90 s push-pull to learn of two others).
   */
  private joinSyncMs = 0;
  private joinSyncQuiet = 0;
  /** Counts changes to other members' entries, so a push-pull can tell whether it taught us anything. */
  private tableChanges = 0;
  private seq: number;
  /** Members in state alive or suspect, self included. */
  private liveCount = 1;
  private leaving = false;
  /** 'leave-disseminated' has been emitted (it is emitted once). */
  private leaveReported = false;
  private readonly outbox = new Fifo<Transmit>();
  private readonly eventQueue = new Fifo<MembershipEvent>();
  private readonly counters: MembershipStats = {
    packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, streamsOut: 0, dropped: {}, eventsDropped: 0,
  };

  constructor(options: MembershipOptions) {
    this.config = resolveConfig(options.config);
    const config = this.config;
    if (typeof options.name !== 'string' || options.name.length === 0 || utf8Length(options.name) > config.nameBytesMax) {
      throw new InvalidOptionError('name', `must be a non-empty string of at most ${config.nameBytesMax} UTF-8 bytes`);
    }
    if (typeof options.addr !== 'string' || options.addr.length === 0 || utf8Length(options.addr) > ADDR_BYTES_MAX) {
      throw new InvalidOptionError('addr', `must be a non-empty string of at most ${ADDR_BYTES_MAX} bytes`);
    }
    const record = options.record ?? EMPTY_BYTES;
    if (record.length > config.recordBytesMax) throw new OversizedError('record', record.length, config.recordBytesMax);
    const incarnation = options.incarnation ?? 0;
    if (!Number.isInteger(incarnation) || incarnation < 0 || incarnation > 0xffff_fff0) {
      throw new InvalidOptionError('incarnation', 'must be an integer in 0..2^32-16');
    }
    this.name = options.name;
    this.rng = options.rng;
    this.keyring = options.keyring;
    this.packetBytesMax = config.udpPayloadBytesMax - (this.keyring === undefined ? 0 : SEAL_OVERHEAD_BYTES);
    this.awareness = new Awareness(config.awarenessMax);
    this.seq = options.rng.nextUint32();
    this.datagramLimits = {
      nameBytesMax: config.nameBytesMax, addrBytesMax: ADDR_BYTES_MAX, carriedRecordBytesMax: config.recordInlineBytesMax,
      recordBytesMax: config.recordBytesMax, membersMax: 0,
    };
    this.streamLimits = { ...this.datagramLimits, carriedRecordBytesMax: config.recordBytesMax, membersMax: config.membersMax };
    const now = options.nowMs;
    const t = this.table;
    t.add(options.name, incarnation, MemberState.Alive, now);
    t.addrs[SELF] = options.addr;
    t.aliveIncarnation[SELF] = incarnation;
    t.records[SELF] = heldRecord(record);
    this.broadcastSelfAlive();
    // Random first deadlines spread members' rounds apart, as memberlist staggers its tickers.
    this.timers.schedule(now + randomInt(this.rng, config.probeIntervalMs), { kind: 'probe', deferred: false });
    this.timers.schedule(now + randomInt(this.rng, config.gossipIntervalMs), { kind: 'gossip' });
    if (config.pushPullIntervalMs > 0) {
      this.pushPullTimer = this.timers.schedule(now + randomInt(this.rng, config.pushPullIntervalMs), { kind: 'push-pull' });
    }
  }

  // ---------------------------------------------------------------- inputs

  /** A datagram arrived from `from`. Never throws on bad input: it is dropped and counted. */
  handleDatagram(nowMs: number, from: string, bytes: Uint8Array): void {
    this.counters.packetsIn++;
    this.counters.bytesIn += bytes.length;
    if (bytes.length > this.config.udpPayloadBytesMax) {
      this.drop(from, 'oversized', `${bytes.length} bytes`);
      return;
    }
    const plain = this.unseal(from, bytes);
    if (plain === undefined) return;
    const decoded = decodePacket(plain, this.datagramLimits);
    if (!decoded.ok) {
      this.drop(from, decoded.error.reason, decoded.error.detail);
      return;
    }
    if (decoded.unknownTypes > 0) this.drop(from, 'unknown-type', `${decoded.unknownTypes} message(s) skipped`);
    for (const message of decoded.messages) this.dispatch(nowMs, from, message, false);
  }

  /**
   * A stream frame arrived from `from`. Returns the reply frame to send back on the same
   * connection, if any. Never throws on bad input.
   */
  handleStream(nowMs: number, from: string, bytes: Uint8Array): Uint8Array | undefined {
    this.counters.bytesIn += bytes.length;
    if (bytes.length > this.config.streamBytesMax) {
      this.drop(from, 'oversized', `stream frame of ${bytes.length} bytes`);
      return undefined;
    }
    const plain = this.unseal(from, bytes);
    if (plain === undefined) return undefined;
    const decoded = decodePacket(plain, this.streamLimits);
    if (!decoded.ok) {
      this.drop(from, decoded.error.reason, decoded.error.detail);
      return undefined;
    }
    let reply: Uint8Array | undefined;
    for (const message of decoded.messages) {
      if (message.type === MessageType.Ping) {
        if (message.target === this.name) reply = encodePacket([{ type: MessageType.Ack, seq: message.seq }]);
      } else if (message.type === MessageType.RecordPull) {
        const t = this.table;
        const s = t.slotOf(message.node);
        // Only a record we hold whole, and at least as new as asked for; the asker retries elsewhere.
        if (s >= 0 && t.addrs[s] !== undefined && !(t.records[s] as HeldRecord).pending) {
          const inc = t.aliveIncarnation[s] as number;
          if (inc > message.incarnation || (inc === message.incarnation && (t.version[s] as number) >= message.version)) {
            reply = encodePacket([this.aliveOf(s, true)]);
          }
        }
      } else if (message.type === MessageType.PushPull) {
        const changesBefore = this.tableChanges;
        this.mergeRemoteState(nowMs, from, message);
        if (!message.reply) reply = encodePacket([this.localState(message.join, true)]);
        else if (this.joinSyncMs > 0) this.noteJoinSync(nowMs, this.tableChanges !== changesBefore);
      } else {
        this.dispatch(nowMs, from, message, true);
      }
    }
    if (reply === undefined) return undefined;
    const sealed = this.seal(reply);
    this.counters.bytesOut += sealed.length;
    return sealed;
  }

  /** Runs every timer due at or before `nowMs`. */
  handleTimeout(nowMs: number): void {
    for (;;) {
      const timer = this.timers.popDue(nowMs);
      if (timer === undefined) return;
      const lateMs = nowMs - timer.deadlineMs;
      const t = timer.kind;
      switch (t.kind) {
        case 'probe': this.onProbeTick(nowMs, lateMs, t.deferred); break;
        case 'probe-ack': this.onProbeAckTimeout(nowMs, timer, lateMs); break;
        case 'gossip': this.onGossipTick(nowMs); break;
        case 'push-pull': this.onPushPullTick(nowMs); break;
        case 'suspicion': this.onSuspicionTimeout(nowMs, timer, lateMs); break;
        case 'relay': this.onRelayTimeout(t.seq); break;
        case 'pull': this.onPullTimeout(nowMs, timer); break;
      }
    }
  }

  /** Contacts seed addresses with a full-state exchange. Empty seeds: this member starts a cluster. */
  join(nowMs: number, seeds: readonly string[]): void {
    if (this.leaving) throw new InvalidStateError('join after leave');
    if (this.config.pushPullIntervalMs > 0 && seeds.length > 0) {
      this.joinSyncMs = this.config.gossipIntervalMs * JOIN_SYNC_FACTOR;
      this.joinSyncQuiet = 0;
      this.schedulePushPull(nowMs, this.joinSyncMs);
    }
    const request = encodePacket([this.localState(true, false)]);
    for (const seed of seeds) {
      if (seed !== this.table.addrs[SELF]) this.send({ addr: seed, bytes: request, stream: true });
    }
  }

  /** Announces a graceful leave. Keep driving the core until 'leave-disseminated' (or a timeout). */
  leave(nowMs: number): void {
    if (this.leaving) return;
    this.leaving = true;
    const incarnation = this.table.incarnation[SELF] as number;
    this.setState(nowMs, SELF, incarnation, MemberState.Left);
    this.cancelProbe();
    const left = encodeMessage({ type: MessageType.Left, node: this.name, incarnation });
    // Tell up to LEAVE_DIRECT_MAX members at once, then gossip as usual. Gossip alone gives each
    // broadcast only 4 sends below ten members, and one member in a few hundred leaves then went
    // unheard of until it suspected the departed member itself (seen in simulation and on loopback).
    const direct = this.sample(LEAVE_DIRECT_MAX, (s) => this.isVisible(s) && isLive(this.stateOf(s)));
    const packet = buildPacket([left]);
    for (const s of direct) this.send({ addr: this.table.addrs[s] as string, bytes: packet, stream: false });
    this.broadcasts.enqueue(this.name, left, () => this.emit({ type: 'leave-disseminated' }));
    if (direct.length === 0) this.leaveDone();
  }

  /** Replaces this member's record and announces it under the next version. */
  setLocalRecord(_nowMs: number, record: Uint8Array): void {
    if (this.leaving) throw new InvalidStateError('setLocalRecord after leave');
    if (record.length > this.config.recordBytesMax) throw new OversizedError('record', record.length, this.config.recordBytesMax);
    const t = this.table;
    t.records[SELF] = heldRecord(record);
    if ((t.version[SELF] as number) < 0xffff_ffff) {
      t.version[SELF] = (t.version[SELF] as number) + 1;
      this.broadcastSelfAlive();
    } else {
      t.version[SELF] = 0; // a new incarnation orders after every version of the old one
      this.bumpIncarnation(t.incarnation[SELF] as number);
    }
  }

  // ---------------------------------------------------------------- outputs

  pollTransmit(): Transmit | undefined {
    return this.outbox.shift();
  }

  pollEvent(): MembershipEvent | undefined {
    return this.eventQueue.shift();
  }

  /** The earliest deadline, in core time; call handleTimeout once it has passed. */
  pollTimeoutMs(): number | undefined {
    return this.timers.peekDeadlineMs();
  }

  // ---------------------------------------------------------------- queries

  /** Every member this node can name (self included), dead and left ones until reaped. */
  members(): MemberInfo[] {
    const out: MemberInfo[] = [];
    for (let s = 0; s < this.table.size; s++) if (this.isVisible(s)) out.push(this.toInfo(s));
    return out;
  }

  member(name: string): MemberInfo | undefined {
    const s = this.table.slotOf(name);
    return s < 0 || !this.isVisible(s) ? undefined : this.toInfo(s);
  }

  /** Members currently alive or suspect, self included. */
  get liveMembers(): number {
    return this.liveCount;
  }

  get incarnation(): number {
    return this.table.incarnation[SELF] as number;
  }

  /** Lifeguard local health score: 0 is healthy, up to awarenessMax - 1. */
  get healthScore(): number {
    return this.awareness.score;
  }

  get stats(): Readonly<MembershipStats> {
    return this.counters;
  }

  // ---------------------------------------------------------------- message handling

  private dispatch(now: number, from: string, m: Message, viaStream: boolean): void {
    switch (m.type) {
      case MessageType.Ping:
        if (m.target !== this.name) this.drop(from, 'wrong-target', m.target);
        else this.sendPacket(from, [encodeMessage({ type: MessageType.Ack, seq: m.seq })]);
        return;
      case MessageType.PingReq: return this.onPingReq(now, from, m.seq, m.target, m.targetAddr, m.nack);
      case MessageType.Ack: return this.onAck(m.seq);
      case MessageType.Nack:
        if (this.probe !== undefined && this.probe.seq === m.seq) this.probe.nacksReceived++;
        return;
      case MessageType.Alive: return this.onAlive(now, from, m, true);
      case MessageType.Suspect: return this.onSuspect(now, m.node, m.incarnation, m.from, true);
      case MessageType.Dead: return this.onDeadOrLeft(now, m.node, m.incarnation, MemberState.Dead, true);
      case MessageType.Left: return this.onDeadOrLeft(now, m.node, m.incarnation, MemberState.Left, true);
      case MessageType.PushPull:
      case MessageType.RecordPull:
        // These only travel on streams, where their size is bounded separately.
        if (!viaStream) this.drop(from, 'stream-message-over-datagram');
        return;
    }
  }

  private onAlive(now: number, from: string, m: Omit<AliveMessage, 'type'>, spreadNew: boolean): void {
    if (m.node === this.name) return this.onAliveAboutSelf(m);
    const t = this.table;
    const carried = m.record.length === m.recordBytes;
    const s = t.slotOf(m.node);
    if (s < 0) {
      if (!this.checkDigest(from, m, carried)) return;
      const created = this.createEntry(now, m.node, m.incarnation, MemberState.Alive);
      if (created < 0) return;
      this.setIdentity(now, created, from, m, carried);
      if (spreadNew && !(t.records[created] as HeldRecord).pending) this.broadcasts.enqueue(m.node, encodeMessage(this.aliveOf(created, false)));
      this.emitMember('joined', created);
      return;
    }
    const aliveInc = t.aliveIncarnation[s] as number;
    // Most alive messages repeat what we know (gossip echoes, push-pull): leave those early.
    if (m.incarnation < aliveInc) return;
    const held = t.records[s] as HeldRecord;
    if (m.incarnation === aliveInc && m.version === t.version[s] && m.addr === t.addrs[s] && bytesEqual(m.digest, held.digest)) {
      // The answer to a record pull (or an inline copy) for the identity we already adopted, or
      // another offer of it: one that failed from its first source and the owner is retried now.
      if (!held.pending) return;
      if (carried) {
        if (this.checkDigest(from, m, true)) this.recordArrived(now, s, m.record);
      } else if (!this.pulls.has(m.node)) {
        this.wantRecord(now, m.node, from);
      }
      return;
    }
    // Liveness newer implies identity newer (an alive message sets both), so this test suffices.
    const mine = { aliveIncarnation: aliveInc, version: t.version[s] as number, addr: t.addrs[s], digest: held.digest };
    if (!identityNewer(mine, { aliveIncarnation: m.incarnation, version: m.version, addr: m.addr, digest: m.digest })) return;
    const contentKnown = !held.pending && bytesEqual(held.digest, m.digest);
    if (!contentKnown && !this.checkDigest(from, m, carried)) return;
    const wasVisible = this.isVisible(s);
    const addrChanged = t.addrs[s] !== m.addr;
    const before = this.stateOf(s);
    // Liveness first: a pull is only started for a live member.
    if (livenessNewer(t.incarnation[s] as number, before, m.incarnation, MemberState.Alive)) {
      this.setState(now, s, m.incarnation, MemberState.Alive);
    }
    this.setIdentity(now, s, from, m, carried || contentKnown);
    const after = t.records[s] as HeldRecord;
    // A record still being pulled is passed on once it arrives, so whoever hears of it can pull it from us.
    if ((spreadNew || wasVisible) && !after.pending) this.broadcasts.enqueue(m.node, encodeMessage(this.aliveOf(s, false)));
    if (!wasVisible) {
      if (isLive(this.stateOf(s))) this.emitMember('joined', s);
    } else if (before !== this.stateOf(s)) {
      this.emitMember(before === MemberState.Suspect ? 'alive' : 'joined', s);
    } else if (addrChanged || after.bytes !== held.bytes) {
      this.emitMember('updated', s);
    }
  }

  /** False (dropped and counted) if a carried record does not match its digest. */
  private checkDigest(from: string, m: Omit<AliveMessage, 'type'>, carried: boolean): boolean {
    if (!carried || m.recordBytes === 0 || bytesEqual(recordDigest(m.record), m.digest)) return true;
    this.drop(from, 'bad-digest', m.node);
    return false;
  }

  /**
   * Adopts a newer identity. `have`: the record is in `m` or already held (same digest);
   * otherwise it is pulled, first from `from`.
   */
  private setIdentity(now: number, s: Slot, from: string, m: Omit<AliveMessage, 'type'>, have: boolean): void {
    const t = this.table;
    t.aliveIncarnation[s] = m.incarnation;
    t.version[s] = m.version;
    t.addrs[s] = intern(m.addr);
    const held = t.records[s] as HeldRecord;
    if (!held.pending && bytesEqual(held.digest, m.digest)) return;
    if (have) {
      t.records[s] = heldRecord(m.record, m.digest);
      return;
    }
    t.records[s] = { bytes: held.bytes, digest: m.digest, size: m.recordBytes, pending: true };
    this.wantRecord(now, m.node, from);
  }

  private wantRecord(now: number, name: string, from: string): void {
    this.pullsWaiting.set(name, from);
    this.pumpPulls(now);
  }

  private recordArrived(now: number, s: Slot, record: Uint8Array): void {
    const t = this.table;
    const name = t.names[s] as string;
    t.records[s] = heldRecord(record, (t.records[s] as HeldRecord).digest);
    const pull = this.pulls.get(name);
    if (pull !== undefined) {
      pull.timer.cancelled = true;
      this.pulls.delete(name);
    }
    this.broadcasts.enqueue(name, encodeMessage(this.aliveOf(s, false)));
    this.emitMember('updated', s);
    this.pumpPulls(now);
  }

  private pumpPulls(now: number): void {
    for (const [name, from] of this.pullsWaiting) {
      if (this.pulls.size >= PULLS_MAX) return;
      this.pullsWaiting.delete(name);
      const s = this.table.slotOf(name);
      if (s < 0 || !(this.table.records[s] as HeldRecord).pending || !isLive(this.stateOf(s)) || this.pulls.has(name)) continue;
      this.startPull(now, s, from);
    }
  }

  private startPull(now: number, s: Slot, addr: string): void {
    const t = this.table;
    const name = t.names[s] as string;
    const request = encodePacket([{
      type: MessageType.RecordPull, node: name, incarnation: t.aliveIncarnation[s] as number, version: t.version[s] as number,
    }]);
    this.send({ addr, bytes: request, stream: true });
    const timer = this.timers.schedule(now + PULL_TIMEOUT_PROBES * this.config.probeIntervalMs, { kind: 'pull', name });
    this.pulls.set(name, { addr, timer });
  }

  /** No record came back: ask the owner itself, and after that wait for the next offer. */
  private onPullTimeout(now: number, timer: Timer<TimerKind>): void {
    const name = (timer.kind as { name: string }).name;
    const pull = this.pulls.get(name);
    if (pull === undefined || pull.timer !== timer) return;
    this.pulls.delete(name);
    const t = this.table;
    const s = t.slotOf(name);
    if (s >= 0 && (t.records[s] as HeldRecord).pending && t.addrs[s] !== undefined && isLive(this.stateOf(s)) && pull.addr !== t.addrs[s]) {
      this.startPull(now, s, t.addrs[s] as string);
    }
    this.pumpPulls(now);
  }

  private onAliveAboutSelf(m: Omit<AliveMessage, 'type'>): void {
    if (this.leaving) return;
    const t = this.table;
    const version = t.version[SELF] as number;
    const incarnation = t.incarnation[SELF] as number;
    // Our own older versions echo around harmlessly; a newer or different one at our incarnation
    // is our previous life's (restart) or another process using our name.
    const differs = m.version > version
      || (m.version === version && (m.addr !== t.addrs[SELF] || !bytesEqual(m.digest, (t.records[SELF] as HeldRecord).digest)));
    if (m.incarnation > incarnation || (m.incarnation === incarnation && differs)) {
      if (m.addr !== t.addrs[SELF]) this.emit({ type: 'conflict', name: this.name, addr: t.addrs[SELF] as string, otherAddr: m.addr });
      this.bumpIncarnation(m.incarnation);
    }
  }

  private onSuspect(now: number, node: string, incarnation: number, from: string, spreadNew: boolean): void {
    if (node === this.name) {
      if (this.leaving) return;
      if (incarnation >= (this.table.incarnation[SELF] as number)) this.refute(incarnation);
      else this.reannounce();
      return;
    }
    const encoded = (): Uint8Array => encodeMessage({ type: MessageType.Suspect, node, incarnation, from });
    let s = this.table.slotOf(node);
    if (s < 0) {
      s = this.createEntry(now, node, incarnation, MemberState.Suspect);
      if (s < 0) return;
      this.startSuspicion(now, node, from);
      if (spreadNew) this.broadcasts.enqueue(node, encoded());
      return;
    }
    const current = this.table.incarnation[s] as number;
    const state = this.stateOf(s);
    if (incarnation === current && state === MemberState.Suspect) {
      // An independent confirmation shrinks the timeout; passing it on lets others count it too.
      const active = this.suspicions.get(node);
      if (active !== undefined && active.suspicion.confirm(from)) {
        this.armSuspicionTimer(now, node, active.suspicion);
        this.broadcasts.enqueue(node, encoded());
      }
      return;
    }
    if (!livenessNewer(current, state, incarnation, MemberState.Suspect)) return;
    this.setState(now, s, incarnation, MemberState.Suspect);
    this.startSuspicion(now, node, from);
    this.broadcasts.enqueue(node, encoded());
    this.emitMember('suspect', s);
  }

  private onDeadOrLeft(now: number, node: string, incarnation: number, state: MemberState, spreadNew: boolean): void {
    if (node === this.name) {
      if (this.leaving) return;
      // A stale "left" from a previous life says nothing about our health; a death does.
      if (incarnation >= (this.table.incarnation[SELF] as number)) this.refute(incarnation, state === MemberState.Dead);
      else this.reannounce();
      return;
    }
    const type = state === MemberState.Left ? MessageType.Left : MessageType.Dead;
    const s = this.table.slotOf(node);
    if (s < 0) {
      if (this.createEntry(now, node, incarnation, state) >= 0 && spreadNew) this.broadcasts.enqueue(node, encodeMessage({ type, node, incarnation }));
      return;
    }
    if (!livenessNewer(this.table.incarnation[s] as number, this.stateOf(s), incarnation, state)) return;
    this.setState(now, s, incarnation, state);
    this.broadcasts.enqueue(node, encodeMessage({ type, node, incarnation }));
    this.emitMember(state === MemberState.Left ? 'left' : 'dead', s);
  }

  /**
   * Merges a peer's full table (memberlist mergeState). A remote "dead" becomes a local
   * suspicion: we give the member a chance to refute rather than trusting one peer's verdict.
   * Members new to us are gossiped on only from a request, whose sender is usually a joiner
   * announcing itself; a reply is a whole table sent to a joiner, and re-gossiping it would
   * flood the cluster with news everyone else already has.
   */
  private mergeRemoteState(now: number, from: string, m: PushPullMessage): void {
    this.table.reserve(m.members.length);
    for (const r of m.members) {
      this.onAlive(now, from, {
        node: r.name, incarnation: r.aliveIncarnation, addr: r.addr, record: r.record, version: r.version, digest: r.digest, recordBytes: r.recordBytes,
      }, !m.reply);
      if (r.state === MemberState.Suspect || r.state === MemberState.Dead) {
        this.onSuspect(now, r.name, r.incarnation, this.name, true);
      } else if (r.state === MemberState.Left) {
        this.onDeadOrLeft(now, r.name, r.incarnation, MemberState.Left, true);
      }
    }
    this.emit({ type: 'synced', from, join: m.join && m.reply, members: m.members.length });
  }

  private localState(join: boolean, reply: boolean): PushPullMessage {
    const t = this.table;
    const members: PushPullEntry[] = [];
    for (let s = 0; s < t.size; s++) {
      if (!this.isVisible(s)) continue;
      const record = t.records[s] as HeldRecord;
      members.push({
        name: t.names[s] as string, addr: t.addrs[s] as string, record: this.inlineRecord(record, false),
        aliveIncarnation: t.aliveIncarnation[s] as number, incarnation: t.incarnation[s] as number, state: this.stateOf(s),
        version: t.version[s] as number, digest: record.digest, recordBytes: record.size,
      });
    }
    return { type: MessageType.PushPull, join, reply, members };
  }

  // ---------------------------------------------------------------- probing

  private onProbeTick(now: number, lateMs: number, deferred: boolean): void {
    if (this.probe !== undefined && !this.probe.acked && !deferred && this.stalled(lateMs)) {
      this.timers.schedule(now + STALL_GRACE_MS, { kind: 'probe', deferred: true });
      return;
    }
    this.finishProbe(now);
    if (!this.leaving) this.startProbe(now);
    this.timers.schedule(now + this.awareness.scale(this.config.probeIntervalMs), { kind: 'probe', deferred: false });
  }

  private startProbe(now: number): void {
    const s = this.nextProbeTarget();
    if (s < 0) return;
    const t = this.table;
    const target = t.names[s] as string;
    const seq = this.nextSeq();
    const bodies: Uint8Array[] = [];
    if (this.config.lifeguard && this.stateOf(s) === MemberState.Suspect) {
      // Buddy system: tell the suspect directly so it can refute at once. The suspicion goes
      // first so the refutation is ready to ride back on the ack.
      bodies.push(encodeMessage({ type: MessageType.Suspect, node: target, incarnation: t.incarnation[s] as number, from: this.name }));
    }
    bodies.push(encodeMessage({ type: MessageType.Ping, seq, target }));
    this.sendPacket(t.addrs[s] as string, bodies);
    const ackTimer = this.timers.schedule(now + this.awareness.scale(this.config.probeTimeoutMs), { kind: 'probe-ack', deferred: false });
    this.probe = { target, seq, acked: false, indirect: false, nacksExpected: 0, nacksReceived: 0, ackTimer };
  }

  private onProbeAckTimeout(now: number, timer: Timer<TimerKind>, lateMs: number): void {
    const p = this.probe;
    if (p === undefined || p.acked || p.ackTimer !== timer) return;
    if (!(timer.kind as { deferred: boolean }).deferred && this.stalled(lateMs)) {
      p.ackTimer = this.timers.schedule(now + STALL_GRACE_MS, { kind: 'probe-ack', deferred: true });
      return;
    }
    p.ackTimer = undefined;
    p.indirect = true;
    const target = this.table.slotOf(p.target);
    const targetAddr = target < 0 ? undefined : this.table.addrs[target];
    if (targetAddr === undefined) return;
    const helpers = this.sample(this.config.indirectChecks, (s) => s !== target && this.stateOf(s) === MemberState.Alive && this.isVisible(s));
    for (const helper of helpers) {
      this.sendPacket(this.table.addrs[helper] as string, [encodeMessage({
        type: MessageType.PingReq, seq: p.seq, target: p.target, targetAddr, nack: true,
      })]);
    }
    p.nacksExpected = helpers.length;
    // The stream path gets through where only UDP is blocked or lossy (serf#216).
    this.send({ addr: targetAddr, bytes: encodePacket([{ type: MessageType.Ping, seq: p.seq, target: p.target }]), stream: true });
  }

  private finishProbe(now: number): void {
    const p = this.probe;
    if (p === undefined) return;
    this.cancelProbe();
    if (p.acked) return;
    // Nacks prove our own path works, so missing ones count against our health (Lifeguard).
    const delta = p.nacksExpected > 0 ? Math.max(0, p.nacksExpected - p.nacksReceived) : 1;
    this.applyAwareness(delta);
    const s = this.table.slotOf(p.target);
    if (s < 0 || !isLive(this.stateOf(s))) return;
    this.onSuspect(now, p.target, this.table.incarnation[s] as number, this.name, true);
  }

  private cancelProbe(): void {
    if (this.probe?.ackTimer !== undefined) this.probe.ackTimer.cancelled = true;
    this.probe = undefined;
  }

  private onAck(seq: number): void {
    const p = this.probe;
    if (p !== undefined && p.seq === seq && !p.acked) {
      p.acked = true;
      if (p.ackTimer !== undefined) p.ackTimer.cancelled = true;
      p.ackTimer = undefined;
      if (!p.indirect) this.applyAwareness(-1);
    }
    const relay = this.relays.get(seq);
    if (relay !== undefined) {
      this.relays.delete(seq);
      this.sendPacket(relay.requesterAddr, [encodeMessage({ type: MessageType.Ack, seq: relay.requesterSeq })]);
    }
  }

  private onPingReq(now: number, from: string, seq: number, target: string, targetAddr: string, nack: boolean): void {
    if (this.relays.size >= RELAYS_MAX) {
      this.drop(from, 'relay-limit');
      return;
    }
    const relaySeq = this.nextSeq();
    this.relays.set(relaySeq, { requesterAddr: from, requesterSeq: seq, nack });
    this.sendPacket(targetAddr, [encodeMessage({ type: MessageType.Ping, seq: relaySeq, target })]);
    this.timers.schedule(now + this.relayNackDelayMs(), { kind: 'relay', seq: relaySeq });
  }

  private onRelayTimeout(seq: number): void {
    const relay = this.relays.get(seq);
    if (relay === undefined) return;
    this.relays.delete(seq);
    if (relay.nack) this.sendPacket(relay.requesterAddr, [encodeMessage({ type: MessageType.Nack, seq: relay.requesterSeq })]);
  }

  /** Next member in the shuffled round-robin order; reshuffles at the end of a round. -1 if none. */
  private nextProbeTarget(): Slot {
    for (let rounds = 0; rounds < 2; ) {
      if (this.probeIndex >= this.probeOrder.length) {
        const order: Slot[] = new Array<Slot>(this.table.size - 1);
        for (let s = 1; s < this.table.size; s++) order[s - 1] = s;
        this.probeOrder = shuffle(this.rng, order);
        this.probeIndex = 0;
        rounds++;
        if (this.probeOrder.length === 0) return -1;
      }
      const s = this.probeOrder[this.probeIndex++] as Slot;
      if (s >= 0 && this.isVisible(s) && isLive(this.stateOf(s))) return s;
    }
    return -1;
  }

  // ---------------------------------------------------------------- suspicion

  private startSuspicion(now: number, name: string, from: string): void {
    const n = this.liveCount;
    const { minMs, maxMs } = suspicionTimeoutsMs(this.config, n);
    let wanted = this.config.lifeguard ? this.config.suspicionMult - 2 : 0;
    if (n - 2 < wanted) wanted = 0;
    this.armSuspicionTimer(now, name, new Suspicion(now, from, wanted, minMs, this.config.lifeguard ? maxMs : minMs));
  }

  private armSuspicionTimer(now: number, name: string, suspicion: Suspicion): void {
    const previous = this.suspicions.get(name);
    if (previous !== undefined) previous.timer.cancelled = true;
    const deadline = Math.max(now, suspicion.deadlineMs());
    this.suspicions.set(name, { suspicion, timer: this.timers.schedule(deadline, { kind: 'suspicion', name, deferred: false }) });
  }

  private onSuspicionTimeout(now: number, timer: Timer<TimerKind>, lateMs: number): void {
    const k = timer.kind as { name: string; deferred: boolean };
    const active = this.suspicions.get(k.name);
    const s = this.table.slotOf(k.name);
    if (active === undefined || active.timer !== timer || s < 0 || this.stateOf(s) !== MemberState.Suspect) return;
    if (!k.deferred && this.stalled(lateMs)) {
      active.timer = this.timers.schedule(now + STALL_GRACE_MS, { kind: 'suspicion', name: k.name, deferred: true });
      return;
    }
    const incarnation = this.table.incarnation[s] as number;
    this.setState(now, s, incarnation, MemberState.Dead);
    this.broadcasts.enqueue(k.name, encodeMessage({ type: MessageType.Dead, node: k.name, incarnation }));
    this.emitMember('dead', s);
  }

  // ---------------------------------------------------------------- gossip and push-pull

  private onGossipTick(now: number): void {
    this.timers.schedule(now + this.config.gossipIntervalMs, { kind: 'gossip' });
    this.reapTombstones(now);
    if (this.broadcasts.size === 0) return;
    // Counted sends go to live members only: each broadcast has few sends (4 below ten members),
    // and spending them on dead ones can leave live members never hearing it (seen in simulation).
    const targets = this.sample(this.config.gossipNodes, (s) => this.isVisible(s) && isLive(this.stateOf(s)));
    // Everyone else left too (a whole cluster shutting down): nobody is left to tell.
    if (targets.length === 0 && this.leaving) this.leaveDone();
    let first: Uint8Array | undefined;
    for (const target of targets) {
      const bodies: Uint8Array[] = [];
      this.broadcasts.take(this.packetBytesMax - HEADER_BYTES, this.retransmitLimit(), bodies);
      if (bodies.length === 0) break;
      const bytes = buildPacket(bodies);
      first ??= bytes;
      this.send({ addr: this.table.addrs[target] as string, bytes, stream: false });
    }
    // Gossip to the dead (memberlist): a copy to one recently dead member, so a wrongly declared
    // one hears it and refutes. A copy costs no broadcast its sends.
    if (first === undefined) return;
    const deadWindowMs = this.config.gossipToTheDeadMs;
    const t = this.table;
    const [dead] = this.sample(1, (s) => this.isVisible(s) && this.stateOf(s) === MemberState.Dead && now - (t.stateChangeMs[s] as number) < deadWindowMs);
    if (dead !== undefined) this.send({ addr: t.addrs[dead] as string, bytes: first, stream: false });
  }

  private onPushPullTick(now: number): void {
    const regularMs = pushPullIntervalMs(this.config, this.liveCount);
    if (this.joinSyncMs > 0) this.joinSyncMs *= 2;
    if (this.joinSyncMs >= regularMs) this.joinSyncMs = 0;
    this.schedulePushPull(now, this.joinSyncMs > 0 ? this.joinSyncMs : regularMs);
    if (this.leaving) return;
    const [peer] = this.sample(1, (s) => this.stateOf(s) === MemberState.Alive && this.isVisible(s));
    // Also try one dead member: if it was only cut off, this heals the partition (antrea#4491).
    const [lost] = this.sample(1, (s) => this.stateOf(s) === MemberState.Dead && this.isVisible(s));
    if (peer === undefined && lost === undefined) return;
    const request = encodePacket([this.localState(false, false)]);
    if (peer !== undefined) this.send({ addr: this.table.addrs[peer] as string, bytes: request, stream: true });
    if (lost !== undefined) this.send({ addr: this.table.addrs[lost] as string, bytes: request, stream: true });
  }

  /** After a join-time push-pull reply: enough quiet ones in a row mean converged, back to the regular period. */
  private noteJoinSync(now: number, learned: boolean): void {
    this.joinSyncQuiet = learned ? 0 : this.joinSyncQuiet + 1;
    if (this.joinSyncQuiet < JOIN_SYNC_QUIET_MAX) return;
    this.joinSyncMs = 0;
    this.schedulePushPull(now, pushPullIntervalMs(this.config, this.liveCount));
  }

  private schedulePushPull(now: number, delayMs: number): void {
    if (this.pushPullTimer !== undefined) this.pushPullTimer.cancelled = true;
    this.pushPullTimer = this.timers.schedule(now + delayMs, { kind: 'push-pull' });
  }

  // ---------------------------------------------------------------- table maintenance

  /** A new member with no identity yet (the caller sets one from an alive message); -1 if the table is full. */
  private createEntry(now: number, name: string, incarnation: number, state: MemberState): Slot {
    if (this.table.size >= this.config.membersMax) {
      this.drop(name, 'member-limit', name);
      return -1;
    }
    const s = this.table.add(intern(name), incarnation, state, now);
    this.tableChanges++;
    if (isLive(state)) this.liveCount++;
    else this.tombstones.push({ name: this.table.names[s] as string, sinceMs: now });
    // New members join the current probe round at a random later position (memberlist does too).
    const order = this.probeOrder;
    order.push(s);
    const span = order.length - this.probeIndex;
    if (span > 1) {
      const j = this.probeIndex + randomInt(this.rng, span);
      order[order.length - 1] = order[j] as Slot;
      order[j] = s;
    }
    return s;
  }

  private setState(now: number, s: Slot, incarnation: number, state: MemberState): void {
    const t = this.table;
    const previous = this.stateOf(s);
    const wasLive = isLive(previous);
    const live = isLive(state);
    if (previous !== state) t.stateChangeMs[s] = now;
    t.incarnation[s] = incarnation;
    t.state[s] = state;
    if (wasLive !== live) this.liveCount += live ? 1 : -1;
    if (wasLive && !live && s !== SELF) this.tombstones.push({ name: t.names[s] as string, sinceMs: now });
    if (state !== MemberState.Suspect) {
      const name = t.names[s] as string;
      const active = this.suspicions.get(name);
      if (active !== undefined) {
        active.timer.cancelled = true;
        this.suspicions.delete(name);
      }
    }
  }

  /** Removes dead and left members whose tombstone period has passed (FIFO by state change time). */
  private reapTombstones(now: number): void {
    const reapMs = this.config.tombstoneReapMs;
    const list = this.tombstones;
    const t = this.table;
    while (this.tombstoneHead < list.length) {
      const { name, sinceMs } = list[this.tombstoneHead] as { name: string; sinceMs: number };
      if (now - sinceMs < reapMs) break;
      this.tombstoneHead++;
      // Skip records of members that came back (or were reaped) since.
      const s = t.slotOf(name);
      if (s > SELF && !isLive(this.stateOf(s)) && (t.stateChangeMs[s] as number) <= sinceMs) this.removeEntry(s);
    }
    if (this.tombstoneHead > 1_024 && this.tombstoneHead * 2 > list.length) {
      list.splice(0, this.tombstoneHead);
      this.tombstoneHead = 0;
    }
  }

  private removeEntry(s: Slot): void {
    const name = this.table.names[s] as string;
    const moved = this.table.remove(s);
    // The member that filled the hole changed slot: the probe round must follow it.
    const order = this.probeOrder;
    for (let i = 0; i < order.length; i++) {
      if (order[i] === s) order[i] = -1;
      else if (order[i] === moved) order[i] = s;
    }
    this.broadcasts.remove(name);
    this.pullsWaiting.delete(name);
  }

  // ---------------------------------------------------------------- helpers

  private refute(incarnation: number, penalize = true): void {
    this.bumpIncarnation(incarnation);
    // Having to refute is evidence that we are slow to answer (Lifeguard).
    if (penalize) this.applyAwareness(1);
  }

  /**
   * Someone still accuses an incarnation we already refuted: our refutation ran out of
   * retransmits before reaching them. Send the current one around again (memberlist ignores
   * such messages, and the accuser's stale suspicion can then expire into a false death).
   */
  private reannounce(): void {
    this.broadcastSelfAlive();
  }

  private bumpIncarnation(atLeast: number): void {
    const t = this.table;
    const next = Math.min(0xffff_ffff, Math.max(t.incarnation[SELF] as number, atLeast) + 1);
    t.incarnation[SELF] = next;
    t.aliveIncarnation[SELF] = next;
    this.broadcastSelfAlive();
  }

  private broadcastSelfAlive(): void {
    this.broadcasts.enqueue(this.name, encodeMessage(this.aliveOf(SELF, false)));
  }

  /** The alive message for a member's identity; the record rides along if held and small enough (any size on a stream). */
  private aliveOf(s: Slot, stream: boolean): AliveMessage {
    const t = this.table;
    const record = t.records[s] as HeldRecord;
    return {
      type: MessageType.Alive, node: t.names[s] as string, incarnation: t.aliveIncarnation[s] as number, addr: t.addrs[s] as string,
      record: this.inlineRecord(record, stream), version: t.version[s] as number, digest: record.digest, recordBytes: record.size,
    };
  }

  private inlineRecord(record: HeldRecord, stream: boolean): Uint8Array {
    return !record.pending && (stream || record.size <= this.config.recordInlineBytesMax) ? record.bytes : EMPTY_BYTES;
  }

  private stateOf(s: Slot): MemberState {
    return this.table.state[s] as MemberState;
  }

  /** Known by an alive message (not only by a suspicion or death notice about an unknown name). */
  private isVisible(s: Slot): boolean {
    return this.table.addrs[s] !== undefined;
  }

  private applyAwareness(delta: number): void {
    if (!this.config.lifeguard) return;
    if (this.awareness.apply(delta)) this.emit({ type: 'health', score: this.awareness.score });
  }

  /** Ends a leave early when no live member remains to hear it; emits 'leave-disseminated' once. */
  private leaveDone(): void {
    if (this.leaveReported) return;
    this.broadcasts.remove(this.name); // drops our left message without its onRetire
    this.emit({ type: 'leave-disseminated' });
  }

  /** Part of local health awareness: with Lifeguard off the core behaves as plain SWIM. */
  private stalled(lateMs: number): boolean {
    return this.config.lifeguard && lateMs > this.config.probeTimeoutMs * STALL_FRACTION;
  }

  /**
   * How long a relay waits for the target before sending a nack. It must land inside the
   * requester's indirect window (probe interval minus probe timeout), or the requester blames
   * itself for nacks that were merely late; memberlist waits a full probe timeout, which at LAN
   * settings arrives after the window closes. 80% of the shorter span leaves room for latency.
   */
  private relayNackDelayMs(): number {
    const c = this.config;
    return 0.8 * Math.min(c.probeTimeoutMs, c.probeIntervalMs - c.probeTimeoutMs);
  }

  private retransmitLimit(): number {
    return retransmitLimit(this.config, this.liveCount);
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  /** Up to k distinct random other members (slots) accepted by `accept`. */
  private sample(k: number, accept: (s: Slot) => boolean): Slot[] {
    const others = this.table.size - 1;
    const out: Slot[] = [];
    if (k <= 0 || others <= 0) return out;
    if (others > k * 4) {
      for (let attempt = 0; out.length < k && attempt < k * 16; attempt++) {
        const s = 1 + randomInt(this.rng, others);
        if (accept(s) && !out.includes(s)) out.push(s);
      }
      if (out.length === k) return out;
      out.length = 0;
    }
    // Small tables, or few acceptable members: choose from all of them.
    const candidates: Slot[] = [];
    for (let s = 1; s <= others; s++) if (accept(s)) candidates.push(s);
    return shuffle(this.rng, candidates).slice(0, k);
  }

  /** Sends `bodies` in one datagram, filling the rest of it with pending broadcasts. */
  private sendPacket(addr: string, bodies: Uint8Array[]): void {
    let size = HEADER_BYTES;
    for (const b of bodies) size += b.length;
    const budget = this.packetBytesMax - size;
    if (budget > 0) this.broadcasts.take(budget, this.retransmitLimit(), bodies);
    this.send({ addr, bytes: buildPacket(bodies), stream: false });
  }

  private send(t: Transmit): void {
    t.bytes = this.seal(t.bytes);
    if (t.stream) this.counters.streamsOut++;
    else this.counters.packetsOut++;
    this.counters.bytesOut += t.bytes.length;
    this.outbox.push(t);
  }

  private seal(plain: Uint8Array): Uint8Array {
    return this.keyring === undefined ? plain : this.keyring.seal(plain, this.rng);
  }

  /** The plaintext of a packet, or undefined (dropped and counted) if it is not acceptable. */
  private unseal(from: string, bytes: Uint8Array): Uint8Array | undefined {
    if (this.keyring === undefined) {
      if (!isSealed(bytes)) return bytes;
      this.drop(from, 'encrypted', 'sealed packet but no keyring configured');
      return undefined;
    }
    const opened = this.keyring.open(bytes);
    if (opened.ok) return opened.plain;
    this.drop(from, opened.reason);
    return undefined;
  }

  private toInfo(s: Slot): MemberInfo {
    const t = this.table;
    return {
      name: t.names[s] as string, addr: t.addrs[s] as string, record: (t.records[s] as HeldRecord).bytes, version: t.version[s] as number,
      incarnation: t.incarnation[s] as number, state: STATE_NAMES[this.stateOf(s)] as MemberInfo['state'],
      stateChangeMs: t.stateChangeMs[s] as number,
    };
  }

  private emitMember(type: MemberChange, s: Slot): void {
    this.tableChanges++;
    if (this.isVisible(s)) this.emit({ type, member: this.toInfo(s) });
  }

  private emit(event: MembershipEvent): void {
    if (event.type === 'leave-disseminated') this.leaveReported = true;
    if (this.eventQueue.size >= this.config.eventQueueMax) {
      this.eventQueue.shift(); // the oldest goes: a driver that stopped draining must not grow memory
      this.counters.eventsDropped++;
    }
    this.eventQueue.push(event);
  }

  private drop(from: string, reason: string, detail?: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    this.emit(detail === undefined ? { type: 'dropped', from, reason } : { type: 'dropped', from, reason, detail });
  }
}

function isLive(state: MemberState): boolean {
  return state === MemberState.Alive || state === MemberState.Suspect;
}

function heldRecord(bytes: Uint8Array, digest?: Uint8Array): HeldRecord {
  if (bytes.length === 0) return EMPTY_HELD_RECORD;
  return { bytes, digest: digest ?? recordDigest(bytes), size: bytes.length, pending: false };
}
