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
 * This class keeps that surface and dispatches each message and timer to the module that owns
 * its concern, all working on one explicit Context (context.ts):
 *   - probe.ts, probe-round.ts: failure detection (probes, indirect probes, relays);
 *   - suspicion.ts: suspicion timeouts, the whole Lifeguard formula;
 *   - transitions.ts: what alive/suspect/dead/left do to the table (rules in members.ts);
 *   - dissemination.ts: gossip rounds, push-pull, join sync, leave;
 *   - record-pull.ts: records too large for gossip, pulled over streams;
 *   - upkeep.ts: tombstones and reaping.
 * docs/ARCHITECTURE.md has the map.
 */
import { type Config, type ConfigOptions, resolveConfig } from './config.js';
import { Context, type MembershipStats, type Transmit, type MembershipEvent } from './context.js';
import { Dissemination } from './dissemination.js';
import { InvalidOptionError, InvalidStateError, OversizedError } from './errors.js';
import { type AppHandler, AppChannels } from './app-channels.js';
import { KeyringOps } from './keyring-ops.js';
import { heldRecord, SELF } from './member-table.js';
import type { MemberInfo } from './members.js';
import { NameClaim } from './name-claim.js';
import { Prober } from './probe.js';
import { ProbeRound } from './probe-round.js';
import { RecordPulls } from './record-pull.js';
import { STREAM_CHANNEL } from './replay.js';
import { type Rng, randomInt } from './rng.js';
import type { Keyring } from './seal.js';
import { Suspicions } from './suspicion.js';
import { Transitions } from './transitions.js';
import { Upkeep } from './upkeep.js';
import { AppKind, decodePacket, EMPTY_BYTES, isPrintable, type KeyringAction, MemberState, type Message, MessageType, utf8Length, type WireLimits } from './wire.js';

export type { MemberChange, MembershipEvent, MembershipStats, Transmit } from './context.js';

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
  /**
   * Which addresses peers may name (a member's address, a probe target). Messages naming any
   * other are dropped as 'bad-address' before anything is sent there. The runtime passes
   * `isUnicastAddress`; the default accepts any (the simulator's members are named "n3").
   */
  acceptAddress?: (addr: string) => boolean;
  /**
   * Which run of this member this is, for replay protection with a keyring: it must grow across
   * restarts of the same member (the runtime passes the wall clock at start; the simulator its
   * virtual time). Only this member's own epochs are ever compared, so clocks need not agree.
   * Default: `nowMs`.
   */
  epoch?: number;
}

/** Longest address accepted from a peer, in bytes: a bracketed IPv6 address with zone and port fits. */
const ADDR_BYTES_MAX = 128;
/** Messages in one datagram: a full compound packet of the smallest gossip (a 6-byte death notice) holds about 230. */
const DATAGRAM_MESSAGES_MAX = 256;
/** Messages in one stream frame: members send one (a push-pull, a record pull or its answer, a ping). */
const STREAM_MESSAGES_MAX = 4;

export class Membership {
  readonly config: Readonly<Config>;
  readonly name: string;
  private readonly ctx: Context;
  private readonly transitions: Transitions;
  private readonly prober: Prober;
  private readonly dissemination: Dissemination;
  private readonly pulls: RecordPulls;
  private readonly upkeep: Upkeep;
  private readonly suspicions: Suspicions;
  private readonly claim: NameClaim;
  private readonly keyringOps: KeyringOps;
  private readonly apps: AppChannels;
  private readonly datagramLimits: WireLimits;
  private readonly streamLimits: WireLimits;

  constructor(options: MembershipOptions) {
    this.config = resolveConfig(options.config);
    const config = this.config;
    if (typeof options.name !== 'string' || options.name.length === 0 || utf8Length(options.name) > config.nameBytesMax || !isPrintable(options.name)) {
      throw new InvalidOptionError('name', `must be a non-empty printable string of at most ${config.nameBytesMax} UTF-8 bytes`);
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
    const ctx = new Context(config, options.name, options.rng, options.keyring, options.epoch ?? options.nowMs, options.acceptAddress ?? (() => true));
    this.ctx = ctx;
    const round = new ProbeRound(options.rng);
    this.suspicions = new Suspicions(ctx);
    this.pulls = new RecordPulls(ctx);
    this.upkeep = new Upkeep(ctx, round, this.pulls);
    this.transitions = new Transitions(ctx, this.suspicions, this.pulls, round, this.upkeep);
    this.prober = new Prober(ctx, round, this.transitions);
    this.claim = new NameClaim(ctx, this.transitions);
    this.keyringOps = new KeyringOps(ctx);
    this.apps = new AppChannels(ctx);
    this.dissemination = new Dissemination(ctx, this.transitions, this.claim);
    this.datagramLimits = {
      nameBytesMax: config.nameBytesMax, addrBytesMax: ADDR_BYTES_MAX, carriedRecordBytesMax: config.recordInlineBytesMax,
      recordBytesMax: config.recordBytesMax, membersMax: 0, messagesMax: DATAGRAM_MESSAGES_MAX, appBytesMax: this.apps.datagramBytesMax,
    };
    this.streamLimits = {
      ...this.datagramLimits, carriedRecordBytesMax: config.recordBytesMax, membersMax: config.membersMax, messagesMax: STREAM_MESSAGES_MAX,
      appBytesMax: this.apps.streamBytesMax,
    };
    const now = options.nowMs;
    const t = ctx.table;
    t.add(options.name, incarnation, MemberState.Alive, now);
    t.addrs[SELF] = options.addr;
    t.aliveIncarnation[SELF] = incarnation;
    t.records[SELF] = heldRecord(record);
    ctx.broadcastSelfAlive();
    // Random first deadlines spread members' rounds apart, as memberlist staggers its tickers.
    ctx.timers.schedule(now + randomInt(ctx.rng, config.probeIntervalMs), { kind: 'probe', deferred: false });
    this.dissemination.startTimers(now);
  }

  // ---------------------------------------------------------------- inputs

  /** A datagram arrived from `from`. Never throws on bad input: it is dropped and counted. */
  handleDatagram(nowMs: number, from: string, bytes: Uint8Array): void {
    const ctx = this.ctx;
    ctx.counters.packetsIn++;
    ctx.counters.bytesIn += bytes.length;
    if (bytes.length > this.config.udpPayloadBytesMax) {
      ctx.drop(from, 'oversized', `${bytes.length} bytes`);
      return;
    }
    const opened = ctx.unseal(nowMs, from, bytes);
    if (!('plain' in opened)) {
      // Sent in clear: the sender cannot read our sealed packets, which is the point of it.
      if (opened.notice !== undefined) {
        ctx.counters.packetsOut++;
        ctx.outbox.push({ addr: from, bytes: opened.notice, stream: false });
      }
      return;
    }
    const decoded = decodePacket(opened.plain, this.datagramLimits);
    if (!decoded.ok) {
      ctx.drop(from, decoded.error.reason, decoded.error.detail);
      return;
    }
    if (decoded.unknownTypes > 0) ctx.drop(from, 'unknown-type', `${decoded.unknownTypes} message(s) skipped`);
    let probes = 0;
    for (const message of decoded.messages) {
      // One ping or ping-req per datagram, as members send them: a packet of many would buy many answers.
      if ((message.type === MessageType.Ping || message.type === MessageType.PingReq) && ++probes > 1) {
        ctx.drop(from, 'probe-limit');
        continue;
      }
      if (this.addressesAccepted(from, message)) this.dispatch(nowMs, from, message, false);
    }
  }

  /**
   * A stream frame arrived from `from`. Returns the reply frame to send back on the same
   * connection, if any. Never throws on bad input.
   */
  handleStream(nowMs: number, from: string, bytes: Uint8Array): Uint8Array | undefined {
    const ctx = this.ctx;
    ctx.counters.bytesIn += bytes.length;
    if (bytes.length > this.config.streamBytesMax) {
      ctx.drop(from, 'oversized', `stream frame of ${bytes.length} bytes`);
      return undefined;
    }
    const opened = ctx.unseal(nowMs, from, bytes);
    if (!('plain' in opened)) return opened.notice;
    const decoded = decodePacket(opened.plain, this.streamLimits);
    if (!decoded.ok) {
      ctx.drop(from, decoded.error.reason, decoded.error.detail);
      return undefined;
    }
    let reply: Uint8Array | undefined;
    for (const message of decoded.messages) {
      if (!this.addressesAccepted(from, message)) continue;
      let answer: Uint8Array | undefined;
      if (message.type === MessageType.Ping) answer = this.prober.streamPingReply(message);
      else if (message.type === MessageType.RecordPull) answer = this.pulls.serve(message);
      else if (message.type === MessageType.PushPull) answer = this.dissemination.onPushPull(nowMs, from, message);
      else if (message.type === MessageType.App && message.kind === AppKind.Request) answer = this.apps.onMessage(nowMs, from, message);
      else this.dispatch(nowMs, from, message, true);
      if (answer !== undefined) reply = answer;
    }
    if (reply === undefined) return undefined;
    const sealed = ctx.seal(reply, STREAM_CHANNEL);
    ctx.counters.bytesOut += sealed.length;
    return sealed;
  }

  /** Runs every timer due at or before `nowMs`. */
  handleTimeout(nowMs: number): void {
    for (;;) {
      const timer = this.ctx.timers.popDue(nowMs);
      if (timer === undefined) return;
      const lateMs = nowMs - timer.deadlineMs;
      const t = timer.kind;
      switch (t.kind) {
        case 'probe': this.prober.onTick(nowMs, lateMs, t.deferred); break;
        case 'probe-ack': this.prober.onAckTimeout(nowMs, timer, lateMs); break;
        case 'gossip':
          this.upkeep.reap(nowMs);
          this.dissemination.onGossipTick(nowMs);
          break;
        case 'push-pull': this.dissemination.onPushPullTick(nowMs); break;
        case 'rejoin': this.dissemination.onRejoinTick(nowMs); break;
        case 'merge': this.dissemination.onMergeTick(nowMs); break;
        case 'suspicion': {
          const s = this.suspicions.expired(nowMs, timer, lateMs);
          if (s >= 0) this.transitions.declareDead(nowMs, s);
          break;
        }
        case 'relay': this.prober.onRelayTimeout(nowMs, t.seq); break;
        case 'pull': this.pulls.timedOut(nowMs, timer); break;
        case 'name-check': this.claim.onTimeout(nowMs); break;
      }
    }
  }

  /** Contacts seed addresses with a full-state exchange. Empty seeds: this member starts a cluster. */
  join(nowMs: number, seeds: readonly string[]): void {
    if (this.ctx.leaving) throw new InvalidStateError('join after leave');
    this.dissemination.join(nowMs, seeds);
  }

  /** Announces a graceful leave. Keep driving the core until 'leave-disseminated' (or a timeout). */
  leave(nowMs: number): void {
    const ctx = this.ctx;
    if (ctx.leaving) return;
    ctx.leaving = true;
    const incarnation = ctx.table.incarnation[SELF] as number;
    this.transitions.setState(nowMs, SELF, incarnation, MemberState.Left);
    this.prober.cancel();
    this.dissemination.announceLeave(incarnation);
  }

  /**
   * Installs, uses (makes primary) or removes `key` here and on every member that hears it
   * (keyring-ops.ts). `wallMs` orders changes across members: pass the wall clock.
   * InvalidStateError without a keyring; InvalidOptionError for a bad key or removing the primary.
   */
  changeKeyring(_nowMs: number, action: KeyringAction, key: Uint8Array, wallMs: number): void {
    this.keyringOps.issue(action, key, wallMs);
  }

  /**
   * Rooms built on the core (app-channels.ts): `onApp` sets channel `channel`'s handler (0-255;
   * undefined removes it), `broadcastApp` gossips a payload of at most `appDatagramBytesMax`
   * (a later one under the same `key` replaces it in the queue), `sendApp` sends one to `addr`
   * in a datagram or as a stream request (up to `appStreamBytesMax`), whose answer reaches the
   * handler as a `reply`. InvalidOptionError for a bad channel, OversizedError for a payload too large.
   */
  onApp(channel: number, handler: AppHandler | undefined): void {
    this.apps.handle(channel, handler);
  }

  broadcastApp(_nowMs: number, channel: number, key: string, payload: Uint8Array): void {
    this.apps.broadcast(channel, key, payload);
  }

  sendApp(_nowMs: number, addr: string, channel: number, payload: Uint8Array, stream: boolean): void {
    this.apps.send(addr, channel, payload, stream);
  }

  get appDatagramBytesMax(): number {
    return this.apps.datagramBytesMax;
  }

  get appStreamBytesMax(): number {
    return this.apps.streamBytesMax;
  }

  /** Replaces this member's record and announces it under the next version. */
  setLocalRecord(_nowMs: number, record: Uint8Array): void {
    const ctx = this.ctx;
    if (ctx.leaving) throw new InvalidStateError('setLocalRecord after leave');
    if (record.length > this.config.recordBytesMax) throw new OversizedError('record', record.length, this.config.recordBytesMax);
    const t = ctx.table;
    t.records[SELF] = heldRecord(record);
    t.changed();
    if ((t.version[SELF] as number) < 0xffff_ffff) {
      t.version[SELF] = (t.version[SELF] as number) + 1;
      ctx.broadcastSelfAlive();
    } else {
      t.version[SELF] = 0; // a new incarnation orders after every version of the old one
      this.transitions.bumpIncarnation(t.incarnation[SELF] as number);
    }
  }

  // ---------------------------------------------------------------- outputs

  pollTransmit(): Transmit | undefined {
    return this.ctx.outbox.shift();
  }

  pollEvent(): MembershipEvent | undefined {
    return this.ctx.events.shift();
  }

  /** The earliest deadline, in core time; call handleTimeout once it has passed. */
  pollTimeoutMs(): number | undefined {
    return this.ctx.timers.peekDeadlineMs();
  }

  // ---------------------------------------------------------------- queries

  /** Every member this node can name (self included), dead and left ones until reaped. */
  members(): MemberInfo[] {
    const ctx = this.ctx;
    const out: MemberInfo[] = [];
    for (let s = 0; s < ctx.table.size; s++) if (ctx.isVisible(s)) out.push(ctx.toInfo(s));
    return out;
  }

  member(name: string): MemberInfo | undefined {
    const s = this.ctx.table.slotOf(name);
    return s < 0 || !this.ctx.isVisible(s) ? undefined : this.ctx.toInfo(s);
  }

  /** This member as the others see it: its address, record, version, incarnation and state. */
  self(): MemberInfo {
    return this.ctx.toInfo(SELF);
  }

  /** Largest record `setLocalRecord` accepts, in bytes. */
  get recordBytesMax(): number {
    return this.config.recordBytesMax;
  }

  /** The address of the process this member gave its name up to (see the 'conflict' event), if it did. */
  get nameLostTo(): string | undefined {
    return this.ctx.nameLostTo;
  }

  /** Members currently alive or suspect, self included. */
  get liveMembers(): number {
    return this.ctx.liveCount;
  }

  get incarnation(): number {
    return this.ctx.table.incarnation[SELF] as number;
  }

  /** Lifeguard local health score: 0 is healthy, up to awarenessMax - 1. */
  get healthScore(): number {
    return this.ctx.awareness.score;
  }

  /** The counters and histograms, live (one object, updated in place); the gauges are filled as of this read. */
  get stats(): Readonly<MembershipStats> {
    const ctx = this.ctx;
    ctx.counters.broadcastQueueDepth = ctx.broadcasts.size;
    return ctx.counters;
  }

  // ---------------------------------------------------------------- message handling

  /** False (dropped and counted) if `m` names an address peers may not name; bad push-pull entries are left out. */
  private addressesAccepted(from: string, m: Message): boolean {
    const accept = this.ctx.acceptAddress;
    // A push-pull's entries are checked as they are merged, chunk by chunk (dissemination.ts).
    let bad: string | undefined;
    if (m.type === MessageType.Alive && !accept(m.addr)) bad = m.addr;
    else if (m.type === MessageType.PingReq && !accept(m.targetAddr)) bad = m.targetAddr;
    if (bad === undefined) return true;
    this.ctx.drop(from, 'bad-address', bad);
    return false;
  }

  private dispatch(now: number, from: string, m: Message, viaStream: boolean): void {
    const t = this.transitions;
    switch (m.type) {
      case MessageType.Ping:
        this.prober.onPing(now, from, m);
        return this.dissemination.onPingFromDeparted(now, from, m.source);
      case MessageType.PingReq: return this.prober.onPingReq(now, from, m);
      case MessageType.Ack: return void (this.claim.onAck(m.seq) || this.prober.onAck(now, m.seq));
      case MessageType.Nack: return this.prober.onNack(m.seq);
      case MessageType.Alive: return void (t.plausible(from, m.node, m.incarnation) && t.onAlive(now, from, m, true));
      case MessageType.Suspect: return void (t.plausible(from, m.node, m.incarnation) && t.onSuspect(now, m.node, m.incarnation, m.from, true));
      case MessageType.Dead: return void (t.plausible(from, m.node, m.incarnation) && t.onDeadOrLeft(now, m.node, m.incarnation, MemberState.Dead, true));
      case MessageType.Left: return void (t.plausible(from, m.node, m.incarnation) && t.onDeadOrLeft(now, m.node, m.incarnation, MemberState.Left, true));
      case MessageType.KeyringOp: return this.keyringOps.onMessage(from, m);
      case MessageType.App: return void this.apps.onMessage(now, from, m);
      case MessageType.PushPull:
      case MessageType.RecordPull:
        // These only travel on streams, where their size is bounded separately.
        if (!viaStream) this.ctx.drop(from, 'stream-message-over-datagram');
        return;
    }
  }
}
