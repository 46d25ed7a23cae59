/**
 * Member state transitions: what an alive, suspect, dead or left message does to the table,
 * one function each, following the rules in members.ts (higher incarnation wins; at equal
 * incarnation left > dead > suspect > alive; identities order by incarnation, then version).
 * Messages about this member itself are answered by refutation: a higher incarnation, spread
 * as a new alive message.
 *
 * `spreadNew`: whether news learned from this message is gossiped on. Everything that changes
 * a known member is; members new to us are not when they come from a push-pull reply (a whole
 * table sent to a joiner that everyone else already knows).
 */
import type { Context } from './context.js';
import { intern } from './intern.js';
import { type HeldRecord, heldRecord, SELF, type Slot } from './member-table.js';
import { bytesEqual, FIRST_SIGHT_INCARNATION_MAX, identityNewer, INCARNATION_JUMP_MAX, isLive, livenessNewer } from './members.js';
import type { ProbeRound } from './probe-round.js';
import type { RecordPulls } from './record-pull.js';
import type { Suspicions } from './suspicion.js';
import type { Upkeep } from './upkeep.js';
import { randomFloat } from './rng.js';
import { type AliveMessage, buildPacket, encodeMessage, MemberState, MessageType, recordDigest } from './wire.js';

/** The fields of an alive message (push-pull entries are applied as one). */
export type AliveFields = Omit<AliveMessage, 'type'>;

/** Refutations of another process holding our name before the rule picks one holder (a crashed previous life needs one). */
const CONFLICT_REFUTATIONS_MAX = 1;

/** Direct answers to one accuser per incarnation: its two verifying questions, and a relayed accusation. */
const ANSWERS_PER_ACCUSER = 3;
/** Members expected to probe a suspect out of turn on hearing of the suspicion (2 confirmations wanted on LAN, with room for loss). */
const CONFIRMING_PROBERS = 6;

export class Transitions {
  /** Answers sent per accuser at `answeredIncarnation` (answerAccuser). */
  private readonly answered = new Map<string, number>();
  private answeredIncarnation = -1;

  constructor(
    private readonly ctx: Context,
    private readonly suspicions: Suspicions,
    private readonly pulls: RecordPulls,
    private readonly round: ProbeRound,
    private readonly upkeep: Upkeep,
  ) {}

  /**
   * False (dropped and counted as 'incarnation-jump') if a message from `sender` moves `node`
   * further than INCARNATION_JUMP_MAX past what this node holds for it (this node included),
   * or names an unknown member beyond FIRST_SIGHT_INCARNATION_MAX.
   */
  plausible(sender: string, node: string, incarnation: number): boolean {
    const t = this.ctx.table;
    const s = t.slotOf(node);
    const limit = s < 0
      ? FIRST_SIGHT_INCARNATION_MAX
      : Math.max(t.incarnation[s] as number, t.aliveIncarnation[s] as number) + INCARNATION_JUMP_MAX;
    if (incarnation <= limit) return true;
    this.ctx.drop(sender, 'incarnation-jump', `${node} at ${incarnation}`);
    return false;
  }

  onAlive(now: number, from: string, m: AliveFields, spreadNew: boolean): void {
    const ctx = this.ctx;
    if (m.node === ctx.name) return this.onAliveAboutSelf(m);
    const t = ctx.table;
    const carried = m.record.length === m.recordBytes;
    const s = t.slotOf(m.node);
    if (s < 0) {
      if (!this.checkDigest(from, m, carried)) return;
      const created = this.createEntry(now, m.node, m.incarnation, MemberState.Alive);
      if (created < 0) return;
      this.setIdentity(now, created, from, m, carried);
      if (spreadNew && !(t.records[created] as HeldRecord).pending) ctx.broadcasts.enqueue(m.node, encodeMessage(ctx.aliveOf(created, false)));
      ctx.emitMember('joined', created);
      return;
    }
    const aliveInc = t.aliveIncarnation[s] as number;
    const state = ctx.stateOf(s);
    // Only a higher incarnation brings a dead or left member back: a new life that starts below
    // its tombstone is told, so it refutes past it.
    if (!isLive(state) && !livenessNewer(t.incarnation[s] as number, state, m.incarnation, MemberState.Alive)) this.tellVerdict(now, s, m);
    // Most alive messages repeat what we know (gossip echoes, push-pull): leave those early.
    if (m.incarnation < aliveInc) return;
    const held = t.records[s] as HeldRecord;
    if (m.incarnation === aliveInc && m.version === t.version[s] && m.addr === t.addrs[s] && bytesEqual(m.digest, held.digest)) {
      // The answer to a record pull (or an inline copy) for the identity we already adopted, or
      // another offer of it: one that failed from its first source and the owner is retried now.
      if (!held.pending) return;
      if (carried) {
        if (this.checkDigest(from, m, true)) this.pulls.arrived(now, s, m.record);
      } else if (!this.pulls.isPulling(m.node)) {
        this.pulls.want(now, m.node, from);
      }
      return;
    }
    // Liveness newer implies identity newer (an alive message sets both), so this test suffices.
    const mine = { aliveIncarnation: aliveInc, version: t.version[s] as number, addr: t.addrs[s], digest: held.digest };
    if (!identityNewer(mine, { aliveIncarnation: m.incarnation, version: m.version, addr: m.addr, digest: m.digest })) {
      // A pull's answer older than what is pending now: that pull is over; ask for the newest.
      if (carried && held.pending && this.pulls.isPulling(m.node)) this.pulls.answered(now, m.node);
      return;
    }
    const contentKnown = !held.pending && bytesEqual(held.digest, m.digest);
    if (!contentKnown && !this.checkDigest(from, m, carried)) return;
    const wasVisible = ctx.isVisible(s);
    const addrChanged = t.addrs[s] !== m.addr;
    const before = state;
    // Liveness first: a pull is only started for a live member.
    if (livenessNewer(t.incarnation[s] as number, before, m.incarnation, MemberState.Alive)) {
      if (before === MemberState.Suspect) ctx.counters.suspicionsRefuted++;
      this.setState(now, s, m.incarnation, MemberState.Alive);
    }
    this.setIdentity(now, s, from, m, carried || contentKnown);
    if (carried && this.pulls.isPulling(m.node)) this.pulls.answered(now, m.node);
    const after = t.records[s] as HeldRecord;
    // A record still being pulled is passed on once it arrives, so whoever hears of it can pull it
    // from us. A dead member's newer identity is kept but never spread: an alive is what creates
    // a live entry at a member that does not know it.
    if (isLive(ctx.stateOf(s)) && (spreadNew || wasVisible) && !after.pending) ctx.broadcasts.enqueue(m.node, encodeMessage(ctx.aliveOf(s, false)));
    if (!wasVisible) {
      if (isLive(ctx.stateOf(s))) ctx.emitMember('joined', s);
    } else if (before !== ctx.stateOf(s)) {
      ctx.emitMember(before === MemberState.Suspect ? 'alive' : 'joined', s);
    } else if (isLive(before) && (addrChanged || after.bytes !== held.bytes)) {
      ctx.emitMember('updated', s); // a dead member's newer identity is news to nobody
    }
  }

  onSuspect(now: number, node: string, incarnation: number, from: string, spreadNew: boolean): void {
    const ctx = this.ctx;
    if (node === ctx.name) {
      if (ctx.leaving) return;
      if (incarnation >= (ctx.table.incarnation[SELF] as number)) this.refute(incarnation);
      else this.reannounce();
      this.answerAccuser(from);
      return;
    }
    const encoded = (): Uint8Array => encodeMessage({ type: MessageType.Suspect, node, incarnation, from });
    let s = ctx.table.slotOf(node);
    if (s < 0) {
      s = this.createEntry(now, node, incarnation, MemberState.Suspect);
      if (s < 0) return;
      this.suspicions.start(now, node, from);
      if (spreadNew) ctx.broadcasts.enqueue(node, encoded());
      return;
    }
    const current = ctx.table.incarnation[s] as number;
    const state = ctx.stateOf(s);
    if (incarnation === current && state === MemberState.Suspect) {
      // An independent confirmation shrinks the timeout; passing it on lets others count it too.
      if (this.suspicions.confirm(now, node, from)) ctx.broadcasts.enqueue(node, encoded());
      return;
    }
    if (!livenessNewer(current, state, incarnation, MemberState.Suspect)) return;
    this.setState(now, s, incarnation, MemberState.Suspect);
    ctx.counters.suspicions++;
    this.suspicions.start(now, node, from);
    // Lifeguard shrinks the timeout only as independent accusers confirm, and they come by
    // chance (a crashed member is probed about once a second cluster-wide). A few members that
    // hear of it probe it next instead, so a crash is confirmed within about one probe interval
    // and a live member gets their pings (carrying the suspicion) to refute with. Pause-tolerance
    // mode only: with pauseToleranceMs 0 the detector stays memberlist's.
    if (from !== ctx.name && ctx.config.lifeguard && ctx.config.pauseToleranceMs > 0 && randomFloat(ctx.rng) * Math.max(1, ctx.liveCount - 2) < CONFIRMING_PROBERS) {
      this.round.prefer(s);
      ctx.counters.confirmingProbes++;
    }
    ctx.broadcasts.enqueue(node, encoded());
    ctx.emitMember('suspect', s);
  }

  onDeadOrLeft(now: number, node: string, incarnation: number, state: MemberState, spreadNew: boolean): void {
    const ctx = this.ctx;
    if (node === ctx.name) {
      if (ctx.leaving) return;
      // A stale "left" from a previous life says nothing about our health; a death does.
      if (incarnation >= (ctx.table.incarnation[SELF] as number)) this.refute(incarnation, state === MemberState.Dead);
      else this.reannounce();
      return;
    }
    const type = state === MemberState.Left ? MessageType.Left : MessageType.Dead;
    const s = ctx.table.slotOf(node);
    if (s < 0) {
      if (this.createEntry(now, node, incarnation, state) >= 0 && spreadNew) ctx.broadcasts.enqueue(node, encodeMessage({ type, node, incarnation }));
      return;
    }
    if (!livenessNewer(ctx.table.incarnation[s] as number, ctx.stateOf(s), incarnation, state)) return;
    this.setState(now, s, incarnation, state);
    ctx.broadcasts.enqueue(node, encodeMessage({ type, node, incarnation }));
    ctx.emitMember(state === MemberState.Left ? 'left' : 'dead', s);
  }

  /** A suspicion ran out: the member at `s` is dead at its current incarnation. */
  declareDead(now: number, s: Slot): void {
    const ctx = this.ctx;
    const name = ctx.table.names[s] as string;
    const incarnation = ctx.table.incarnation[s] as number;
    this.setState(now, s, incarnation, MemberState.Dead);
    ctx.counters.deathsDeclared++;
    ctx.broadcasts.enqueue(name, encodeMessage({ type: MessageType.Dead, node: name, incarnation }));
    ctx.emitMember('dead', s);
  }

  setState(now: number, s: Slot, incarnation: number, state: MemberState): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const previous = ctx.stateOf(s);
    const wasLive = isLive(previous);
    const live = isLive(state);
    if (previous !== state) t.stateChangeMs[s] = now;
    t.incarnation[s] = incarnation;
    t.state[s] = state;
    t.changed();
    if (wasLive !== live) ctx.liveCount += live ? 1 : -1;
    if (wasLive && !live && s !== SELF) this.upkeep.tombstone(t.names[s] as string, now);
    if (state !== MemberState.Suspect) this.suspicions.end(t.names[s] as string);
  }

  /** Raises this member's incarnation above `atLeast` and announces it. */
  bumpIncarnation(atLeast: number): void {
    const t = this.ctx.table;
    const next = Math.max(t.incarnation[SELF] as number, atLeast) + 1;
    t.incarnation[SELF] = next;
    t.aliveIncarnation[SELF] = next;
    t.changed();
    this.ctx.broadcastSelfAlive();
  }

  private onAliveAboutSelf(m: AliveFields): void {
    const ctx = this.ctx;
    if (ctx.leaving) return;
    const t = ctx.table;
    const version = t.version[SELF] as number;
    const incarnation = t.incarnation[SELF] as number;
    // Our own older versions echo around harmlessly; a newer or different one at our incarnation
    // is our previous life's (restart) or another process using our name.
    const differs = m.version > version
      || (m.version === version && (m.addr !== t.addrs[SELF] || !bytesEqual(m.digest, (t.records[SELF] as HeldRecord).digest)));
    if (m.incarnation > incarnation || (m.incarnation === incarnation && differs)) {
      const own = t.addrs[SELF] as string;
      if (m.addr !== own) {
        // Another process uses our name. A previous life that crashed stops answering after one
        // refutation; a live one answers every time. Then the higher address gives the name up,
        // so both sides (and every node) settle on the same holder. Only with a keyring: without
        // one anybody can forge the claims, and giving up would let two packets silence a member.
        if (++ctx.conflictRefutations > CONFLICT_REFUTATIONS_MAX && m.addr < own && ctx.keyring !== undefined) {
          ctx.giveUpName(m.addr, 'lost');
          return;
        }
        ctx.emit({ type: 'conflict', name: ctx.name, addr: own, otherAddr: m.addr, outcome: 'refuted' });
      }
      this.bumpIncarnation(m.incarnation);
    }
  }

  /**
   * Sends our dead or left verdict on the member at `s` to the address an older-incarnation alive
   * names for it, unless that alive only echoes the identity we hold. A restart that begins
   * below its tombstone here (this node kept the tombstone longer than the seed it joined by)
   * would otherwise stay dead here until the tombstone is reaped. Bare and rate-limited, as any
   * answer to an address that is not a known live member.
   */
  private tellVerdict(now: number, s: Slot, m: AliveFields): void {
    const t = this.ctx.table;
    const echo = m.incarnation === t.aliveIncarnation[s] && m.version === t.version[s] && m.addr === t.addrs[s]
      && bytesEqual(m.digest, (t.records[s] as HeldRecord).digest);
    if (echo) return;
    const type = this.ctx.stateOf(s) === MemberState.Left ? MessageType.Left : MessageType.Dead;
    this.ctx.sendAnswer(now, m.addr, false, [encodeMessage({ type, node: m.node, incarnation: t.incarnation[s] as number })]);
  }

  /** False (dropped and counted) if a carried record does not match its digest. */
  private checkDigest(from: string, m: AliveFields, carried: boolean): boolean {
    if (!carried || m.recordBytes === 0 || bytesEqual(recordDigest(m.record), m.digest)) return true;
    this.ctx.drop(from, 'bad-digest', m.node);
    return false;
  }

  /**
   * Adopts a newer identity. `have`: the record is in `m` or already held (same digest);
   * otherwise it is pulled, first from `from`.
   */
  private setIdentity(now: number, s: Slot, from: string, m: AliveFields, have: boolean): void {
    const t = this.ctx.table;
    t.changed();
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
    this.pulls.want(now, m.node, from);
  }

  /** A new member with no identity yet (the caller sets one from an alive message); -1 if the table is full. */
  private createEntry(now: number, name: string, incarnation: number, state: MemberState): Slot {
    const ctx = this.ctx;
    if (ctx.table.size >= ctx.config.membersMax) {
      ctx.drop(name, 'member-limit', name);
      return -1;
    }
    const s = ctx.table.add(intern(name), incarnation, state, now);
    ctx.tableChanges++;
    if (isLive(state)) ctx.liveCount++;
    else this.upkeep.tombstone(ctx.table.names[s] as string, now);
    this.round.add(s);
    return s;
  }

  /**
   * Sends this member's current alive straight back to a member that accused it (a verifying
   * accuser, or the first one named in relayed gossip): its suspicion is the one that expires
   * first, and gossip forwards a refutation only a few times. Bare, so no piggybacked gossip
   * spends the refutation's own sends on one member; at most ANSWERS_PER_ACCUSER per accuser
   * and incarnation. Only in pause-tolerance mode, whose accusers verify.
   */
  private answerAccuser(accuser: string): void {
    const ctx = this.ctx;
    if (ctx.config.pauseToleranceMs <= 0) return;
    const s = ctx.table.slotOf(accuser);
    if (s <= SELF || !isLive(ctx.stateOf(s))) return;
    const incarnation = ctx.table.incarnation[SELF] as number;
    if (this.answeredIncarnation !== incarnation) {
      this.answeredIncarnation = incarnation;
      this.answered.clear();
    }
    const count = this.answered.get(accuser) ?? 0;
    if (count >= ANSWERS_PER_ACCUSER) return;
    this.answered.set(accuser, count + 1);
    ctx.counters.accusersAnswered++;
    ctx.send({ addr: ctx.table.addrs[s] as string, bytes: buildPacket([encodeMessage(ctx.aliveOf(SELF, false))]), stream: false });
  }

  private refute(incarnation: number, penalize = true): void {
    this.ctx.counters.refutations++;
    this.bumpIncarnation(incarnation);
    // Having to refute is evidence that we are slow to answer (Lifeguard).
    if (penalize) this.ctx.applyAwareness(1);
  }

  /**
   * Someone still accuses an incarnation we already refuted: our refutation ran out of
   * retransmits before reaching them. Send the current one around again (memberlist ignores
   * such messages, and the accuser's stale suspicion can then expire into a false death).
   */
  private reannounce(): void {
    this.ctx.broadcastSelfAlive();
  }
}
