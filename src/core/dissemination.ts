/**
 * Dissemination: how news travels. Every state change is queued once per member in the
 * broadcast queue and piggybacked on every outgoing packet, and gossip rounds send what is
 * queued to a few random live members, each item up to λ·log(n) times (broadcast-queue.ts).
 * Push-pull exchanges the whole table with one random member now and then (and with the seeds
 * on join), so anything gossip missed heals; a dead member is also contacted, so long partitions
 * heal without operator action. A graceful leave is sent directly to many members and gossiped.
 */
import { pushPullIntervalMs } from './config.js';
import type { Context, MembershipEvent, TimerKind } from './context.js';
import { type HeldRecord, SELF } from './member-table.js';
import { isLive } from './members.js';
import type { NameClaim } from './name-claim.js';
import { randomInt } from './rng.js';
import type { Timer } from './timers.js';
import type { Transitions } from './transitions.js';
import {
  buildPacket, encodeMessage, encodePushPullMembers, HEADER_BYTES, MemberState, MessageType, type PushPullEntry, type PushPullMessage,
  pushPullPacket,
} from './wire.js';

/** Push-pull entries merged in one turn of the driver's loop (about 5-10 ms of work); the rest follow 1 ms later. */
const MERGE_CHUNK = 512;
/**
 * Large push-pulls waiting to be merged. Members send one per push-pull period, so a longer
 * backlog is a flood: more are refused unanswered (the sender tries again next period) rather
 * than held, each up to a whole frame's worth of decoded entries.
 */
const MERGES_PENDING_MAX = 4;
/**
 * Whole-table encodings made per second at most (one is 13-22 ms at 10,000 members). The
 * encoding is kept until the table changes; a flood of push-pull requests beyond this rate is
 * answered with the latest one, at most about 1/rate seconds older than the table.
 */
const STATE_ENCODES_PER_SECOND = 10;

interface PendingMerge {
  from: string;
  m: PushPullMessage;
  /** Index of the next entry to merge. */
  next: number;
  changesBefore: number;
}

/** Departed members whose last push-pull with us is remembered; the oldest is forgotten beyond this. */
const DEPARTED_SYNCS_MAX = 1_024;
/** A graceful leave is sent directly to this many live members, besides being gossiped. */
const LEAVE_DIRECT_MAX = 64;
/** The first push-pull after a join comes this many gossip intervals later (1 s on LAN). */
const JOIN_SYNC_FACTOR = 5;
/** Join-time push-pulls that teach nothing, in a row, before the regular period resumes. */
const JOIN_SYNC_QUIET_MAX = 3;
/** Push-pull requests awaiting their answer that are timed; the oldest is forgotten beyond this (a peer that never answers). */
const PUSH_PULLS_TIMED_MAX = 64;

export class Dissemination {
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
  /** The seeds of the last join, asked again while they are not alive here (rejoin). */
  private seeds: readonly string[] = [];
  /** A join reply has been merged once. */
  private joined = false;
  private rejoinTimer: Timer<TimerKind> | undefined;
  /** The member list as last encoded, and the table revision it shows. */
  private encoded: { revision: number; members: Uint8Array } | undefined;
  private encodeTokens = STATE_ENCODES_PER_SECOND;
  /** When we last push-pulled with a departed member that pinged us, by name (onPingFromDeparted). */
  private readonly departedSyncs = new Map<string, number>();
  private encodeTokensAtMs = 0;
  /**
   * When the latest push-pull request to each address went out, until its answer is merged
   * (`stats.pushPullMs`). Answers come back on the request's own stream, from the address asked.
   */
  private readonly requestsSentMs = new Map<string, number>();

  constructor(
    private readonly ctx: Context,
    private readonly transitions: Transitions,
    private readonly claim: NameClaim,
  ) {}

  /** Arms the first gossip round and push-pull at random offsets, so members' rounds spread apart. */
  startTimers(now: number): void {
    const { config, rng, timers } = this.ctx;
    timers.schedule(now + randomInt(rng, config.gossipIntervalMs), { kind: 'gossip' });
    if (config.pushPullIntervalMs > 0) {
      this.pushPullTimer = timers.schedule(now + randomInt(rng, config.pushPullIntervalMs), { kind: 'push-pull' });
    }
  }

  /** Sends a join request (this member's whole table) to each seed; starts the join-time push-pulls. */
  join(now: number, seeds: readonly string[]): void {
    const ctx = this.ctx;
    if (seeds.length > 0 && !this.joined) ctx.joining = true;
    if (ctx.config.pushPullIntervalMs > 0 && seeds.length > 0) {
      this.joinSyncMs = ctx.config.gossipIntervalMs * JOIN_SYNC_FACTOR;
      this.joinSyncQuiet = 0;
      this.schedulePushPull(now, this.joinSyncMs);
    }
    const request = this.statePacket(now, true, false);
    for (const seed of seeds) {
      if (seed !== ctx.table.addrs[SELF]) this.request(now, seed, request);
    }
    this.seeds = seeds.filter((seed) => seed !== ctx.table.addrs[SELF]);
    if (ctx.config.rejoinIntervalMs > 0 && this.seeds.length > 0 && this.rejoinTimer === undefined) this.scheduleRejoin(now);
  }

  /**
   * Sends a join request to every seed not held alive here: a seed that restarted after its
   * tombstone was reaped is known to nobody and contacts nobody, and a member whose seeds were
   * all down at its start knows nobody; either stays apart for good without this.
   */
  onRejoinTick(now: number): void {
    const ctx = this.ctx;
    this.rejoinTimer = undefined;
    if (ctx.leaving) return;
    const missing = this.seeds.filter((seed) => !this.aliveAt(seed));
    if (missing.length > 0) {
      const request = this.statePacket(now, true, false);
      for (const seed of missing) this.request(now, seed, request);
    }
    this.scheduleRejoin(now);
  }

  /**
   * A member we hold dead or left pinged us from its address, so it runs: a new life, or one we
   * wrongly declared over, whose alive we missed. The verdict on our ack makes it refute, but
   * a refutation only it gossips reaches any one member with a few percent chance at a few
   * hundred members, and push-pull may take minutes. So we push-pull with it now, at most
   * once per push-pull period per member: its reply carries its current alive.
   */
  onPingFromDeparted(now: number, from: string, source: string | undefined): void {
    const ctx = this.ctx;
    const s = source === undefined ? -1 : ctx.table.slotOf(source);
    if (s <= SELF || ctx.table.addrs[s] !== from || isLive(ctx.stateOf(s)) || ctx.leaving) return;
    const name = source as string;
    const last = this.departedSyncs.get(name);
    if (last !== undefined && now - last < ctx.config.pushPullIntervalMs) return;
    this.departedSyncs.delete(name);
    if (this.departedSyncs.size >= DEPARTED_SYNCS_MAX) this.departedSyncs.delete(this.departedSyncs.keys().next().value as string);
    this.departedSyncs.set(name, now);
    this.request(now, from, this.statePacket(now, false, false));
    ctx.counters.pushPulls++;
  }

  /** Tells up to LEAVE_DIRECT_MAX members at once that this member left, then gossips it as usual. */
  announceLeave(incarnation: number): void {
    const ctx = this.ctx;
    const left = encodeMessage({ type: MessageType.Left, node: ctx.name, incarnation });
    // Gossip alone gives each broadcast only 4 sends below ten members, and one member in a few
    // hundred leaves then went unheard of until it suspected the departed member itself (seen in
    // simulation and on loopback).
    const direct = ctx.sample(LEAVE_DIRECT_MAX, (s) => ctx.isVisible(s) && isLive(ctx.stateOf(s)));
    const packet = buildPacket([left]);
    for (const s of direct) ctx.send({ addr: ctx.table.addrs[s] as string, bytes: packet, stream: false });
    ctx.broadcasts.enqueue(ctx.name, left, () => ctx.emit({ type: 'leave-disseminated' }));
    if (direct.length === 0) this.leaveDone();
  }

  onGossipTick(now: number): void {
    const ctx = this.ctx;
    ctx.timers.schedule(now + ctx.config.gossipIntervalMs, { kind: 'gossip' });
    if (ctx.broadcasts.size === 0) return;
    // Counted sends go to live members only: each broadcast has few sends (4 below ten members),
    // and spending them on dead ones can leave live members never hearing it (seen in simulation).
    const targets = ctx.sample(ctx.config.gossipNodes, (s) => ctx.isVisible(s) && isLive(ctx.stateOf(s)));
    // Everyone else left too (a whole cluster shutting down): nobody is left to tell.
    if (targets.length === 0 && ctx.leaving) this.leaveDone();
    let first: Uint8Array | undefined;
    for (const target of targets) {
      const bodies: Uint8Array[] = [];
      ctx.broadcasts.take(ctx.packetBytesMax - HEADER_BYTES, ctx.retransmitLimit(), bodies);
      if (bodies.length === 0) break;
      const bytes = buildPacket(bodies);
      first ??= bytes;
      ctx.send({ addr: ctx.table.addrs[target] as string, bytes, stream: false });
    }
    // Gossip to the dead (memberlist): a copy to one recently dead member, so a wrongly declared
    // one hears it and refutes. A copy costs no broadcast its sends.
    if (first === undefined) return;
    const deadWindowMs = ctx.config.gossipToTheDeadMs;
    const t = ctx.table;
    const [dead] = ctx.sample(1, (s) => ctx.isVisible(s) && ctx.stateOf(s) === MemberState.Dead && now - (t.stateChangeMs[s] as number) < deadWindowMs);
    if (dead !== undefined) ctx.send({ addr: t.addrs[dead] as string, bytes: first, stream: false });
  }

  onPushPullTick(now: number): void {
    const ctx = this.ctx;
    const regularMs = pushPullIntervalMs(ctx.config, ctx.liveCount);
    if (this.joinSyncMs > 0) this.joinSyncMs *= 2;
    if (this.joinSyncMs >= regularMs) this.joinSyncMs = 0;
    this.schedulePushPull(now, this.joinSyncMs > 0 ? this.joinSyncMs : regularMs);
    if (ctx.leaving) return;
    const [peer] = ctx.sample(1, (s) => ctx.stateOf(s) === MemberState.Alive && ctx.isVisible(s));
    // Also try one dead member: if it was only cut off, this heals the partition (antrea#4491).
    const [lost] = ctx.sample(1, (s) => ctx.stateOf(s) === MemberState.Dead && ctx.isVisible(s));
    if (peer === undefined && lost === undefined) return;
    const request = this.statePacket(now, false, false);
    if (peer !== undefined) this.request(now, ctx.table.addrs[peer] as string, request);
    if (lost !== undefined) this.request(now, ctx.table.addrs[lost] as string, request);
    ctx.counters.pushPulls += (peer === undefined ? 0 : 1) + (lost === undefined ? 0 : 1);
  }

  private readonly merges: PendingMerge[] = [];

  /**
   * A push-pull arrived on a stream: merges it; returns our own state if it was a request.
   * A large one is merged MERGE_CHUNK entries at a time, one chunk per turn of the driver's
   * loop, so no single input blocks it long (10,000 entries took 120-190 ms at once); its
   * 'synced' event comes after the last chunk. A large request is answered with our state as it
   * was before merging (the sender's own entries would only echo back).
   */
  onPushPull(now: number, from: string, m: PushPullMessage): Uint8Array | undefined {
    const merge: PendingMerge = { from, m, next: 0, changesBefore: this.ctx.tableChanges };
    if (m.members.length <= MERGE_CHUNK) {
      this.mergeChunk(now, merge);
      return this.merged(now, merge);
    }
    if (this.merges.length >= MERGES_PENDING_MAX) {
      this.ctx.drop(from, 'merge-backlog', `${m.members.length} entries`);
      return undefined;
    }
    const reply = m.reply ? undefined : this.statePacket(now, m.join, true);
    this.merges.push(merge);
    if (this.merges.length === 1) this.onMergeTick(now);
    return reply;
  }

  /** Merges the next chunk of the oldest pending push-pull; the rest wait for the next turn. */
  onMergeTick(now: number): void {
    const merge = this.merges[0];
    if (merge === undefined) return;
    this.mergeChunk(now, merge);
    if (merge.next >= merge.m.members.length) {
      this.merges.shift();
      this.merged(now, merge);
    }
    // 1 ms ahead, not now: a timer due now would run in this same handleTimeout pass, without yielding.
    if (this.merges.length > 0) this.ctx.timers.schedule(now + 1, { kind: 'merge' });
  }

  /** A push-pull fully merged: 'synced', the bookkeeping of a join, and our state if it was a request. */
  private merged(now: number, merge: PendingMerge): Uint8Array | undefined {
    const ctx = this.ctx;
    const m = merge.m;
    const synced: MembershipEvent = { type: 'synced', from: merge.from, join: m.join && m.reply, members: m.members.length };
    if (m.join && m.reply && this.claim.pending) {
      this.claim.hold(synced); // the join ends when the holder of our name answers or not
      this.joined = true;
    } else {
      ctx.emit(synced);
      if (m.join && m.reply) {
        ctx.joining = false;
        this.joined = true;
      }
    }
    if (!m.reply) return this.statePacket(now, m.join, true);
    const sentMs = this.requestsSentMs.get(merge.from);
    if (sentMs !== undefined) {
      this.requestsSentMs.delete(merge.from);
      ctx.pushPullTime.observe(now - sentMs);
    }
    if (this.joinSyncMs > 0) this.noteJoinSync(now, ctx.tableChanges !== merge.changesBefore);
    return undefined;
  }

  /**
   * Merges up to MERGE_CHUNK entries of a peer's full table (memberlist mergeState; mergeEntry
   * has the rules). Members new to us are gossiped on only from a request, whose
   * sender is usually a joiner announcing itself; a reply is a whole table sent to a joiner,
   * and re-gossiping it would flood the cluster with news everyone else already has.
   */
  private mergeChunk(now: number, merge: PendingMerge): void {
    const ctx = this.ctx;
    const { from, m } = merge;
    if (merge.next === 0) ctx.table.reserve(m.members.length);
    const end = Math.min(m.members.length, merge.next + MERGE_CHUNK);
    let badAddresses = 0;
    for (let i = merge.next; i < end; i++) {
      const r = m.members[i] as PushPullEntry;
      if (!ctx.acceptAddress(r.addr)) {
        badAddresses++;
        continue;
      }
      if (!this.transitions.plausible(from, r.name, Math.max(r.aliveIncarnation, r.incarnation))) continue;
      // A joiner's own entry comes first. If its name is alive here at another address, keep
      // the holder: our reply then shows the joiner its name taken, and it stays out.
      if (i === 0 && m.join && !m.reply && this.heldElsewhere(r.name, r.addr)) continue;
      if (ctx.joining && r.name === ctx.name && r.addr !== ctx.table.addrs[SELF] && isLive(r.state)) {
        // Our name is alive at another address: we join under it only if nobody answers there.
        this.claim.contest(now, r.addr, Math.max(r.incarnation, r.aliveIncarnation));
        continue;
      }
      this.mergeEntry(now, from, r, !m.reply);
    }
    merge.next = end;
    if (badAddresses > 0) ctx.drop(from, 'bad-address', `${badAddresses} push-pull entries`);
  }

  /**
   * One entry of a peer's table. Only an entry that shows its member alive may create a live
   * entry here: a table also holds the members its owner saw die, and merging those as alive
   * first made every joiner list the dead as suspect, serve them, and declare them dead again.
   * Dead and left entries are liveness only (no identity, no record pull): a member held alive
   * here is suspected, so a stale table cannot kill it unheard (memberlist mergeState); any other
   * takes the verdict, and one unknown here becomes a hidden tombstone that keeps stale alives of
   * that life out until reaped, listed nowhere and sent to nobody. A suspect entry for a member
   * unknown here is passed over, as memberlist does: its refutation or death will come by gossip.
   */
  private mergeEntry(now: number, from: string, r: PushPullEntry, spreadNew: boolean): void {
    const ctx = this.ctx;
    const t = this.transitions;
    const alive = (): void => t.onAlive(now, from, {
      node: r.name, incarnation: r.aliveIncarnation, addr: r.addr, record: r.record, version: r.version, digest: r.digest, recordBytes: r.recordBytes,
    }, spreadNew);
    const s = ctx.table.slotOf(r.name);
    const self = r.name === ctx.name;
    switch (r.state) {
      case MemberState.Alive: return alive();
      case MemberState.Suspect:
        if (s < 0) return;
        alive();
        return t.onSuspect(now, r.name, r.incarnation, ctx.name, true);
      case MemberState.Dead:
        if (!self && s >= 0 && ctx.isVisible(s) && ctx.stateOf(s) === MemberState.Alive) return t.onSuspect(now, r.name, r.incarnation, ctx.name, true);
        return t.onDeadOrLeft(now, r.name, r.incarnation, MemberState.Dead, false);
      case MemberState.Left: return t.onDeadOrLeft(now, r.name, r.incarnation, MemberState.Left, false);
    }
  }

  /** Sends a push-pull request (a join request too) over a stream, and notes when, to time its answer. */
  private request(now: number, addr: string, packet: Uint8Array): void {
    this.requestsSentMs.delete(addr);
    if (this.requestsSentMs.size >= PUSH_PULLS_TIMED_MAX) this.requestsSentMs.delete(this.requestsSentMs.keys().next().value as string);
    this.requestsSentMs.set(addr, now);
    this.ctx.sendStream(addr, packet, 'state');
  }

  /** This member's table as a push-pull packet, from the kept encoding while the table is unchanged. */
  private statePacket(now: number, join: boolean, reply: boolean): Uint8Array {
    const revision = this.ctx.table.revision;
    const elapsedMs = Math.max(0, now - this.encodeTokensAtMs);
    this.encodeTokens = Math.min(STATE_ENCODES_PER_SECOND, this.encodeTokens + (elapsedMs * STATE_ENCODES_PER_SECOND) / 1_000);
    this.encodeTokensAtMs = now;
    if (this.encoded === undefined || (this.encoded.revision !== revision && this.encodeTokens >= 1)) {
      this.encodeTokens -= 1;
      this.encoded = { revision, members: encodePushPullMembers(this.localEntries()) };
    }
    return pushPullPacket(join, reply, this.encoded.members);
  }

  private localEntries(): PushPullEntry[] {
    const ctx = this.ctx;
    const t = ctx.table;
    const members: PushPullEntry[] = [];
    for (let s = 0; s < t.size; s++) {
      if (!ctx.isVisible(s)) continue;
      const record = t.records[s] as HeldRecord;
      members.push({
        name: t.names[s] as string, addr: t.addrs[s] as string, record: ctx.inlineRecord(record, false),
        aliveIncarnation: t.aliveIncarnation[s] as number, incarnation: t.incarnation[s] as number, state: ctx.stateOf(s),
        version: t.version[s] as number, digest: record.digest, recordBytes: record.size,
      });
    }
    return members;
  }

  /** After a join-time push-pull reply: enough quiet ones in a row mean converged, back to the regular period. */
  private noteJoinSync(now: number, learned: boolean): void {
    this.joinSyncQuiet = learned ? 0 : this.joinSyncQuiet + 1;
    if (this.joinSyncQuiet < JOIN_SYNC_QUIET_MAX) return;
    this.joinSyncMs = 0;
    this.schedulePushPull(now, pushPullIntervalMs(this.ctx.config, this.ctx.liveCount));
  }

  private scheduleRejoin(now: number): void {
    const intervalMs = this.ctx.config.rejoinIntervalMs;
    this.rejoinTimer = this.ctx.timers.schedule(now + intervalMs / 2 + randomInt(this.ctx.rng, Math.max(1, Math.floor(intervalMs))), { kind: 'rejoin' });
  }

  /** Whether `name` is a live member here (this one included) at an address other than `addr`. */
  private heldElsewhere(name: string, addr: string): boolean {
    const ctx = this.ctx;
    const s = ctx.table.slotOf(name);
    return s >= 0 && ctx.isVisible(s) && isLive(ctx.stateOf(s)) && ctx.table.addrs[s] !== addr;
  }

  /** Whether some live member other than this one is known at `addr`. */
  private aliveAt(addr: string): boolean {
    const ctx = this.ctx;
    for (let s = 1; s < ctx.table.size; s++) if (ctx.table.addrs[s] === addr && isLive(ctx.stateOf(s))) return true;
    return false;
  }

  private schedulePushPull(now: number, delayMs: number): void {
    if (this.pushPullTimer !== undefined) this.pushPullTimer.cancelled = true;
    this.pushPullTimer = this.ctx.timers.schedule(now + delayMs, { kind: 'push-pull' });
  }

  /** Ends a leave early when no live member remains to hear it; emits 'leave-disseminated' once. */
  private leaveDone(): void {
    const ctx = this.ctx;
    if (ctx.leaveReported) return;
    ctx.broadcasts.remove(ctx.name); // drops our left message without its onRetire
    ctx.emit({ type: 'leave-disseminated' });
  }
}
