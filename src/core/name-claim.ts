/**
 * A joiner whose name a seed shows alive at another address: before giving the name up, it asks
 * that address directly whether a process there answers to the name (a ping for our own name,
 * up to CHECKS times, a probe timeout each). An answer means a second live process: the joiner
 * stays out (`conflict`, outcome `refused`). Silence means the holder is our previous life,
 * crashed before anyone declared it dead (a restart at a new address, as a rescheduled pod
 * gets): the joiner refutes past it and joins, instead of waiting out the suspicion timeout.
 * Until the check ends, the join's `synced` event is held back, so start() resolves or rejects
 * on the outcome.
 */
import type { Context, MembershipEvent, TimerKind } from './context.js';
import type { Timer } from './timers.js';
import type { Transitions } from './transitions.js';
import { buildPacket, encodeMessage, MessageType } from './wire.js';

/** Pings to the holder before it counts as gone: at 5% loss each way, a live one stays unheard one time in about 1,700. */
const CHECKS = 3;

interface Check {
  addr: string;
  /** The highest incarnation the reply showed for the holder: ours must pass it. */
  incarnation: number;
  seq: number;
  sent: number;
  timer: Timer<TimerKind>;
}

export class NameClaim {
  private check: Check | undefined;
  private held: MembershipEvent | undefined;

  constructor(
    private readonly ctx: Context,
    private readonly transitions: Transitions,
  ) {}

  /** Whether a check is under way (the join's outcome waits for it). */
  get pending(): boolean {
    return this.check !== undefined;
  }

  /** A join reply shows our name alive at `addr` at `incarnation`. */
  contest(now: number, addr: string, incarnation: number): void {
    if (this.ctx.nameLostTo !== undefined) return;
    const c = this.check;
    if (c !== undefined) {
      c.incarnation = Math.max(c.incarnation, incarnation);
      return;
    }
    this.check = { addr, incarnation, seq: 0, sent: 0, timer: undefined as unknown as Timer<TimerKind> };
    this.ask(now);
  }

  /** The join's `synced` event, held until the check ends. */
  hold(event: MembershipEvent): void {
    this.held = event;
  }

  /** True if `seq` answered our check: the holder lives, and the name is not ours. */
  onAck(seq: number): boolean {
    const c = this.check;
    if (c === undefined || c.seq !== seq) return false;
    c.timer.cancelled = true;
    this.check = undefined;
    this.held = undefined;
    this.ctx.giveUpName(c.addr, 'refused');
    return true;
  }

  /** No answer in time: ask again, or take the name. */
  onTimeout(now: number): void {
    const c = this.check;
    if (c === undefined) return;
    if (c.sent < CHECKS) return this.ask(now);
    this.check = undefined;
    const ctx = this.ctx;
    ctx.joining = false;
    ctx.emit({ type: 'conflict', name: ctx.name, addr: ctx.table.addrs[0] as string, otherAddr: c.addr, outcome: 'refuted' });
    this.transitions.bumpIncarnation(c.incarnation);
    if (this.held !== undefined) ctx.emit(this.held);
    this.held = undefined;
  }

  private ask(now: number): void {
    const ctx = this.ctx;
    const c = this.check as Check;
    c.seq = ctx.nextSeq();
    c.sent++;
    // Bare: the holder is no member we know, and the ping is all it needs to answer.
    ctx.send({ addr: c.addr, bytes: buildPacket([encodeMessage({ type: MessageType.Ping, seq: c.seq, target: ctx.name, source: ctx.name })]), stream: false });
    c.timer = ctx.timers.schedule(now + ctx.config.probeTimeoutMs, { kind: 'name-check' });
  }
}
