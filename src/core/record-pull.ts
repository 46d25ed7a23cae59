/**
 * Pulling records too large for gossip. An alive message names such a record by version, digest
 * and size only; the receiver asks for it over the stream path (RecordPull), first from the
 * member that offered it, which holds it (a node passes on such an alive message only once it
 * holds the record), so pulls spread over the cluster instead of all hitting the owner. A pull
 * unanswered within PULL_TIMEOUT_PROBES probe intervals is retried once from the owner; after
 * that the next offer of the same identity starts it again. A newer identity announced while a
 * pull is in flight waits for it, and is pulled as soon as that pull ends: an answer with an
 * older record (a burst of writes) does not leave the newest one unasked for.
 */
import type { Context, TimerKind } from './context.js';
import { type HeldRecord, heldRecord, type Slot } from './member-table.js';
import { isLive } from './members.js';
import type { Timer } from './timers.js';
import { encodeMessage, encodePacket, MessageType, type RecordPullMessage } from './wire.js';

/** Record pulls in flight at once; the rest wait their turn. */
const PULLS_MAX = 16;
/** A record pull unanswered after this many probe intervals is retried from the owner (then dropped). */
const PULL_TIMEOUT_PROBES = 2;

export class RecordPulls {
  /** Pulls in flight, by member name. */
  private readonly inFlight = new Map<string, { addr: string; timer: Timer<TimerKind> }>();
  /** Members whose record is wanted, in order, with who offered it (the owner is asked if they fail). */
  private readonly waiting = new Map<string, string>();

  constructor(private readonly ctx: Context) {}

  isPulling(name: string): boolean {
    return this.inFlight.has(name);
  }

  /** `name`'s record (already marked pending in the table) is wanted; `from` offered it. */
  want(now: number, name: string, from: string): void {
    this.waiting.set(name, from);
    this.pump(now);
  }

  /** The pending record of the member at `s` arrived whole (its digest already checked). */
  arrived(now: number, s: Slot, record: Uint8Array): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const name = t.names[s] as string;
    t.records[s] = heldRecord(record, (t.records[s] as HeldRecord).digest);
    t.changed();
    const pull = this.inFlight.get(name);
    if (pull !== undefined) {
      pull.timer.cancelled = true;
      this.inFlight.delete(name);
    }
    // Passed on and reported only while the member lives: an alive creates a live entry wherever it is unknown.
    if (isLive(ctx.stateOf(s))) {
      ctx.broadcasts.enqueue(name, encodeMessage(ctx.aliveOf(s, false)));
      ctx.emitMember('updated', s);
    }
    this.pump(now);
  }

  /**
   * A pull's answer came and held another identity than the one now pending (an older one: the
   * member wrote again meanwhile, or a newer one, adopted whole): the pull is over, and what is
   * still wanted is asked for now.
   */
  answered(now: number, name: string): void {
    const pull = this.inFlight.get(name);
    if (pull === undefined) return;
    pull.timer.cancelled = true;
    this.inFlight.delete(name);
    this.pump(now);
  }

  /** No record came back: ask the owner itself, and after that wait for the next offer. */
  timedOut(now: number, timer: Timer<TimerKind>): void {
    const name = (timer.kind as { name: string }).name;
    const pull = this.inFlight.get(name);
    if (pull === undefined || pull.timer !== timer) return;
    this.inFlight.delete(name);
    const ctx = this.ctx;
    const t = ctx.table;
    const s = t.slotOf(name);
    if (s >= 0 && (t.records[s] as HeldRecord).pending && t.addrs[s] !== undefined && isLive(ctx.stateOf(s)) && pull.addr !== t.addrs[s]) {
      this.start(now, s, t.addrs[s] as string);
    }
    this.pump(now);
  }

  /** The member left the table: nothing more to pull for it. */
  forget(name: string): void {
    this.waiting.delete(name);
  }

  /** The answer to a peer's pull: only a record held whole, and at least as new as asked for (the asker retries elsewhere). */
  serve(m: RecordPullMessage): Uint8Array | undefined {
    const ctx = this.ctx;
    const t = ctx.table;
    const s = t.slotOf(m.node);
    if (s < 0 || t.addrs[s] === undefined || (t.records[s] as HeldRecord).pending) return undefined;
    const inc = t.aliveIncarnation[s] as number;
    if (inc > m.incarnation || (inc === m.incarnation && (t.version[s] as number) >= m.version)) {
      return encodePacket([ctx.aliveOf(s, true)]);
    }
    return undefined;
  }

  private pump(now: number): void {
    const ctx = this.ctx;
    for (const [name, from] of this.waiting) {
      if (this.inFlight.size >= PULLS_MAX) return;
      // Wanted again while a pull for an older version is out: it waits for that pull to end.
      if (this.inFlight.has(name)) continue;
      this.waiting.delete(name);
      const s = ctx.table.slotOf(name);
      if (s < 0 || !(ctx.table.records[s] as HeldRecord).pending || !isLive(ctx.stateOf(s))) continue;
      this.start(now, s, from);
    }
  }

  private start(now: number, s: Slot, addr: string): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const name = t.names[s] as string;
    const request = encodePacket([{
      type: MessageType.RecordPull, node: name, incarnation: t.aliveIncarnation[s] as number, version: t.version[s] as number,
    }]);
    ctx.sendStream(addr, request, 'record');
    ctx.counters.recordPulls++;
    const timer = ctx.timers.schedule(now + PULL_TIMEOUT_PROBES * ctx.config.probeIntervalMs, { kind: 'pull', name });
    this.inFlight.set(name, { addr, timer });
  }
}
