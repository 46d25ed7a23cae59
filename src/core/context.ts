/**
 * What every protocol module of one member works on: the member table, the broadcast queue, the
 * timer table, local health, and the outputs (transmits, events, counters). Modules receive this
 * object explicitly; none holds a reference to `Membership`. The helpers here are the ones two or
 * more modules share: sending, sampling members, describing a member, emitting and dropping.
 */
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { type Config, retransmitLimit } from './config.js';
import { Fifo } from './fifo.js';
import { Histogram, type HistogramView, ROUND_TRIP_BOUNDS_MS } from './histogram.js';
import { encodeKeyNotice, isKeyProblem, KEY_NOTICE_BYTES, KeyNotices, type KeyProblem, readKeyNotice } from './key-notice.js';
import { type HeldRecord, MemberTable, SELF, type Slot } from './member-table.js';
import { isLive, type MemberInfo, STATE_NAMES } from './members.js';
import { type Rng, randomInt, shuffle } from './rng.js';
import { type Channel, DATAGRAM_CHANNEL, REPLAY_STAMP_BYTES, ReplayGuard, ReplayStamp, STREAM_CHANNEL } from './replay.js';
import { isSealed, type Keyring, SEAL_OVERHEAD_BYTES } from './seal.js';
import { TimerHeap } from './timers.js';
import { type AliveMessage, buildPacket, EMPTY_BYTES, encodeMessage, HEADER_BYTES, type MemberState, MessageType } from './wire.js';

/** Bytes to send. `stream` means one frame over a reliable connection (TCP in the runtime). */
export interface Transmit {
  addr: string;
  bytes: Uint8Array;
  stream: boolean;
  /**
   * Streams only: the largest reply frame to read, set by the reply the request asks for (an
   * ack, a record, a whole state). A larger one is dropped unread: a peer answering a ping with
   * megabytes cannot make us buffer them.
   */
  replyBytesMax?: number;
}

/** The reply a stream request asks for. */
export type StreamReply = 'ack' | 'record' | 'state';
/** An ack frame: the message, the replay stamp and the seal come to well under this. */
const ACK_FRAME_BYTES_MAX = 256;
/** Room beside a record and its member's name in their reply frame: the other fields, stamp and seal. */
const RECORD_FRAME_SLACK_BYTES = 1_024;

export type MemberChange = 'joined' | 'suspect' | 'alive' | 'dead' | 'left' | 'updated';

export type MembershipEvent =
  | { type: MemberChange; member: MemberInfo }
  /** Local health score changed (0 is healthy). */
  | { type: 'health'; score: number }
  /** Peer input was rejected; it changed no state. */
  | { type: 'dropped'; from: string; reason: string; detail?: string }
  /**
   * Another process claims this member's name from `otherAddr`. `refuted`: this member took the
   * name back (a higher incarnation). `lost`: both kept refuting, and by the rule every node
   * applies (the lower address keeps the name) this member gave it up and went silent.
   * `refused`: the name was alive elsewhere when this member joined; it stays out.
   */
  | { type: 'conflict'; name: string; addr: string; otherAddr: string; outcome: 'refuted' | 'lost' | 'refused' }
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
  /** Direct probes sent, and those that got no ack in time (then probed indirectly). */
  probes: number;
  probesFailed: number;
  /** Ping-reqs sent to helpers for indirect probes. */
  indirectProbes: number;
  /** Members this one started to suspect (any source), and of those, ones later seen alive again. */
  suspicions: number;
  suspicionsRefuted: number;
  /** Deaths this member declared when a suspicion ran out. */
  deathsDeclared: number;
  /** Suspicions that ran out and were put to the suspect directly before a death (pause-tolerance mode). */
  verifications: number;
  /** Alive messages sent straight back to a member that accused this one. */
  accusersAnswered: number;
  /** Members put first in the probe round on hearing someone else suspect them (to confirm or refute sooner). */
  confirmingProbes: number;
  /** Times this member refuted a suspicion or death notice about itself. */
  refutations: number;
  /** Push-pull exchanges this member started, and records it pulled over streams. */
  pushPulls: number;
  recordPulls: number;
  /** From a probe's ping to its ack, for probes acked directly (not through helpers or the stream path): memberlist's probeNode. */
  readonly probeRttMs: HistogramView;
  /** From sending a push-pull request (join, rejoin, periodic) to its answer merged: memberlist's pushPullNode. */
  readonly pushPullMs: HistogramView;
  /** Broadcasts waiting in the gossip queue (memberlist's queue.broadcasts), as of the last read of `Membership.stats`. */
  broadcastQueueDepth: number;
}

/** Every timer the core arms, by kind; `deferred` marks the one extra wait after a stall. */
export type TimerKind =
  | { kind: 'probe'; deferred: boolean }
  | { kind: 'probe-ack'; deferred: boolean }
  | { kind: 'gossip' }
  | { kind: 'push-pull' }
  | { kind: 'rejoin' }
  | { kind: 'merge' }
  | { kind: 'suspicion'; name: string; deferred: boolean; verifying?: number }
  | { kind: 'relay'; seq: number }
  | { kind: 'pull'; name: string }
  | { kind: 'name-check' };

/** Answers per second to one address that is not a known member, and the burst allowed. */
const ANSWERS_PER_SECOND = 10;
const ANSWER_BURST = 20;
/** Addresses whose answer budget is tracked; the oldest is forgotten beyond this. */
const ANSWER_SOURCES_MAX = 4_096;
/** A timer that fires later than this fraction of the probe timeout means the event loop stalled. */
const STALL_FRACTION = 0.5;
/** After a stall, accusing timers wait this long once more so queued input is processed first. */
export const STALL_GRACE_MS = 5;

export class Context {
  readonly table = new MemberTable();
  readonly broadcasts = new BroadcastQueue();
  readonly timers = new TimerHeap<TimerKind>();
  readonly awareness: Awareness;
  /** Largest plaintext packet: the payload budget less any sealing overhead. */
  readonly packetBytesMax: number;
  /** The durations in `counters`, written by the modules that measure them (probe.ts, dissemination.ts). */
  readonly probeRtt = new Histogram(ROUND_TRIP_BOUNDS_MS);
  readonly pushPullTime = new Histogram(ROUND_TRIP_BOUNDS_MS);
  readonly counters: MembershipStats = {
    packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, streamsOut: 0, dropped: {}, eventsDropped: 0,
    probes: 0, probesFailed: 0, indirectProbes: 0, suspicions: 0, suspicionsRefuted: 0, deathsDeclared: 0, refutations: 0, pushPulls: 0, recordPulls: 0,
    verifications: 0, accusersAnswered: 0, confirmingProbes: 0,
    probeRttMs: this.probeRtt, pushPullMs: this.pushPullTime, broadcastQueueDepth: 0,
  };
  readonly outbox = new Fifo<Transmit>();
  private readonly notices = new KeyNotices();
  readonly events = new Fifo<MembershipEvent>();
  /** Members in state alive or suspect, self included. */
  liveCount = 1;
  /** Counts changes to other members' entries, so a push-pull can tell whether it taught us anything. */
  tableChanges = 0;
  leaving = false;
  /** Between join() and the first join reply merged: a live holder of our name then refuses us. */
  joining = false;
  /** How often this member took its name back from another process. */
  conflictRefutations = 0;
  /** The address of the process this member gave its name up to, once it did. */
  nameLostTo: string | undefined;
  /** 'leave-disseminated' has been emitted (it is emitted once). */
  leaveReported = false;
  private seq: number;
  /** With a keyring: stamps what this member seals, and refuses replays of what others sealed. */
  private readonly stamp: ReplayStamp | undefined;
  private readonly answerBudgets = new Map<string, { tokens: number; atMs: number }>();
  private readonly guard: ReplayGuard | undefined;

  constructor(
    readonly config: Readonly<Config>,
    readonly name: string,
    readonly rng: Rng,
    readonly keyring: Keyring | undefined,
    epoch: number,
    /** Whether a peer-supplied address may be used (the runtime refuses port 0, multicast and the like). */
    readonly acceptAddress: (addr: string) => boolean,
  ) {
    this.packetBytesMax = config.udpPayloadBytesMax - (keyring === undefined ? 0 : SEAL_OVERHEAD_BYTES + REPLAY_STAMP_BYTES);
    if (keyring !== undefined) {
      this.stamp = new ReplayStamp(name, epoch);
      this.guard = new ReplayGuard();
    }
    this.awareness = new Awareness(config.awarenessMax);
    this.seq = rng.nextUint32();
  }

  stateOf(s: Slot): MemberState {
    return this.table.state[s] as MemberState;
  }

  /** Known by an alive message (not only by a suspicion or death notice about an unknown name). */
  isVisible(s: Slot): boolean {
    return this.table.addrs[s] !== undefined;
  }

  toInfo(s: Slot): MemberInfo {
    const t = this.table;
    return {
      name: t.names[s] as string, addr: t.addrs[s] as string, record: (t.records[s] as HeldRecord).bytes, version: t.version[s] as number,
      incarnation: t.incarnation[s] as number, state: STATE_NAMES[this.stateOf(s)] as MemberInfo['state'],
      stateChangeMs: t.stateChangeMs[s] as number,
    };
  }

  /** The alive message for a member's identity; the record rides along if held and small enough (any size on a stream). */
  aliveOf(s: Slot, stream: boolean): AliveMessage {
    const t = this.table;
    const record = t.records[s] as HeldRecord;
    return {
      type: MessageType.Alive, node: t.names[s] as string, incarnation: t.aliveIncarnation[s] as number, addr: t.addrs[s] as string,
      record: this.inlineRecord(record, stream), version: t.version[s] as number, digest: record.digest, recordBytes: record.size,
    };
  }

  inlineRecord(record: HeldRecord, stream: boolean): Uint8Array {
    return !record.pending && (stream || record.size <= this.config.recordInlineBytesMax) ? record.bytes : EMPTY_BYTES;
  }

  broadcastSelfAlive(): void {
    this.broadcasts.enqueue(this.name, encodeMessage(this.aliveOf(SELF, false)));
  }

  /**
   * This member gives its name up to the process at `otherAddr`: it goes silent (no probes, no
   * refutations, its own announcements withdrawn), as after a leave that tells nobody.
   */
  giveUpName(otherAddr: string, outcome: 'lost' | 'refused'): void {
    if (this.nameLostTo !== undefined) return;
    this.nameLostTo = otherAddr;
    this.leaving = true;
    this.broadcasts.remove(this.name);
    this.emit({ type: 'conflict', name: this.name, addr: this.table.addrs[SELF] as string, otherAddr, outcome });
  }

  /** Lifeguard: `delta` > 0 is evidence that this node is the slow one, < 0 that it is fine. */
  applyAwareness(delta: number): void {
    if (!this.config.lifeguard) return;
    if (this.awareness.apply(delta)) this.emit({ type: 'health', score: this.awareness.score });
  }

  /** A timer this late means the event loop stalled. Part of local health awareness: with Lifeguard off the core behaves as plain SWIM. */
  stalled(lateMs: number): boolean {
    return this.config.lifeguard && lateMs > this.config.probeTimeoutMs * STALL_FRACTION;
  }

  retransmitLimit(): number {
    return retransmitLimit(this.config, this.liveCount);
  }

  nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  /** Up to k distinct random other members (slots) accepted by `accept`. */
  sample(k: number, accept: (s: Slot) => boolean): Slot[] {
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

  /** True if `name` is a live member this node knows at `addr`: one it may spend gossip on. */
  knownLiveAt(name: string | undefined, addr: string): boolean {
    if (name === undefined) return false;
    const s = this.table.slotOf(name);
    return s > SELF && this.table.addrs[s] === addr && isLive(this.stateOf(s));
  }

  /**
   * Sends an answer to `addr`. To a live member known there it carries gossip like any packet;
   * to anyone else it goes bare, no larger than what it answers, so a forged or replayed request
   * gains an attacker nothing and spends no broadcast's transmissions.
   */
  sendAnswer(nowMs: number, addr: string, known: boolean, bodies: Uint8Array[]): void {
    if (known) {
      this.sendPacket(addr, bodies);
      return;
    }
    // And no faster than ANSWERS_PER_SECOND to any one such address: no reflection floods.
    const budget = this.answerBudgets.get(addr) ?? { tokens: ANSWER_BURST, atMs: nowMs };
    budget.tokens = Math.min(ANSWER_BURST, budget.tokens + ((nowMs - budget.atMs) * ANSWERS_PER_SECOND) / 1_000);
    budget.atMs = nowMs;
    if (budget.tokens < 1) {
      this.drop(addr, 'answer-rate');
      return;
    }
    budget.tokens -= 1;
    if (!this.answerBudgets.has(addr) && this.answerBudgets.size >= ANSWER_SOURCES_MAX) this.answerBudgets.delete(this.answerBudgets.keys().next().value as string);
    this.answerBudgets.set(addr, budget);
    this.send({ addr, bytes: buildPacket(bodies), stream: false });
  }

  /** Sends `bodies` in one datagram, filling the rest of it with pending broadcasts. */
  sendPacket(addr: string, bodies: Uint8Array[]): void {
    let size = HEADER_BYTES;
    for (const b of bodies) size += b.length;
    const budget = this.packetBytesMax - size;
    if (budget > 0) this.broadcasts.take(budget, this.retransmitLimit(), bodies);
    this.send({ addr, bytes: buildPacket(bodies), stream: false });
  }

  /** Sends one stream request frame to `addr`; the reply it may read is bounded by what it asks for. */
  sendStream(addr: string, plain: Uint8Array, reply: StreamReply): void {
    const c = this.config;
    const replyBytesMax = reply === 'ack' ? ACK_FRAME_BYTES_MAX : reply === 'record'
      ? Math.min(c.streamBytesMax, c.recordBytesMax + c.nameBytesMax + RECORD_FRAME_SLACK_BYTES) : c.streamBytesMax;
    this.send({ addr, bytes: plain, stream: true, replyBytesMax });
  }

  send(t: Transmit): void {
    t.bytes = this.seal(t.bytes, t.stream ? STREAM_CHANNEL : DATAGRAM_CHANNEL);
    if (t.stream) this.counters.streamsOut++;
    else this.counters.packetsOut++;
    this.counters.bytesOut += t.bytes.length;
    this.outbox.push(t);
  }

  seal(plain: Uint8Array, channel: Channel): Uint8Array {
    if (this.keyring === undefined) return plain;
    return this.keyring.seal((this.stamp as ReplayStamp).stamp(plain, channel), this.rng);
  }

  /**
   * The plaintext of a packet, or undefined (dropped and counted) if it is not acceptable:
   * unsealed, wrongly sealed or replayed. A key notice (key-notice.ts) is counted as dropped
   * input too; for a packet refused because keys differ, `notice` is the one to send back (at most
   * one per source a second).
   */
  unseal(nowMs: number, from: string, bytes: Uint8Array): { plain: Uint8Array } | { notice: Uint8Array | undefined } {
    const meaning = readKeyNotice(bytes);
    if (meaning !== undefined) {
      this.drop(from, 'key-refused', meaning);
      return { notice: undefined };
    }
    if (this.keyring === undefined) {
      if (!isSealed(bytes)) return { plain: bytes };
      this.drop(from, 'encrypted', 'sealed packet but no keyring configured');
      return { notice: this.keyNotice(nowMs, from, 'encrypted', bytes) };
    }
    const opened = this.keyring.open(bytes);
    if (!opened.ok) {
      this.drop(from, opened.reason);
      return { notice: isKeyProblem(opened.reason) ? this.keyNotice(nowMs, from, opened.reason, bytes) : undefined };
    }
    const fresh = (this.guard as ReplayGuard).check(nowMs, opened.plain);
    if (fresh.ok) return { plain: fresh.plain };
    this.drop(from, fresh.reason);
    return { notice: undefined };
  }

  /** The notice for a packet refused for `problem`, unless `from` had one within the second (or the packet is smaller). */
  private keyNotice(nowMs: number, from: string, problem: KeyProblem, refused: Uint8Array): Uint8Array | undefined {
    if (refused.length < KEY_NOTICE_BYTES || !this.notices.allow(nowMs, from)) return undefined;
    this.counters.bytesOut += KEY_NOTICE_BYTES;
    return encodeKeyNotice(problem);
  }

  emitMember(type: MemberChange, s: Slot): void {
    this.tableChanges++;
    if (this.isVisible(s)) this.emit({ type, member: this.toInfo(s) });
  }

  emit(event: MembershipEvent): void {
    if (event.type === 'leave-disseminated') this.leaveReported = true;
    if (this.events.size >= this.config.eventQueueMax) {
      this.events.shift(); // the oldest goes: a driver that stopped draining must not grow memory
      this.counters.eventsDropped++;
    }
    this.events.push(event);
  }

  drop(from: string, reason: string, detail?: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    this.emit(detail === undefined ? { type: 'dropped', from, reason } : { type: 'dropped', from, reason, detail });
  }
}
