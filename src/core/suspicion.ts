/**
 * Suspicion: how long a suspected member has to refute before it is declared dead. The whole
 * formula lives here.
 *
 * Bounds (memberlist util.go suspicionTimeout), for a cluster of n live members:
 *   min = suspicionMult x max(1, log10(n)) x probeIntervalMs,   max = suspicionMaxTimeoutMult x min.
 * With a pause tolerance P (config.pauseToleranceMs > 0, the LAN default) the minimum is instead
 *   min = max(probeIntervalMs, P - probeTimeoutMs + gossipIntervalMs),
 * what a member stalled for P needs: it may be suspected one probe timeout after its stall began,
 * and once running it hears of the suspicion within a gossip round. Verification makes that
 * enough: a suspicion that runs out is not yet a death. The member asks the suspect directly,
 * twice within one probe timeout, sending it the suspicion itself; a suspect that runs refutes
 * and answers its accuser directly (transitions.ts), and only silence is a death. A refutation
 * that gossip failed to bring (each member forwards it about 8 times) can then no longer kill a
 * live member, so the minimum needs no room for the epidemic; a crash costs one probe timeout more.
 * Lifeguard's dynamic timeout (memberlist suspicion.go): a suspicion starts at max and shrinks
 * toward min as other members independently suspect the same member at the same incarnation;
 * with c of k wanted confirmations (k = suspicionMult - 2, or 0 when fewer than k other members
 * could confirm) the timeout is
 *   max - (max - min) x log(c + 1) / log(k + 1),   never below min.
 * Many independent accusers make a real failure likely, so it is declared sooner; a lone accuser
 * (perhaps itself the sick one) has to wait the longest. Without Lifeguard the timeout is min.
 */
import type { Config } from './config.js';
import { STALL_GRACE_MS, type Context, type TimerKind } from './context.js';
import type { Slot } from './member-table.js';
import type { Timer } from './timers.js';
import { buildPacket, encodeMessage, MemberState, MessageType } from './wire.js';

/** Direct questions to a suspect before it is declared dead (with a pause tolerance). */
const VERIFY_ATTEMPTS = 2;

/** Lifeguard suspicion bounds for a cluster of `members`. */
export function suspicionTimeoutsMs(config: Config, members: number): { minMs: number; maxMs: number } {
  const n = Math.max(2, members);
  let minMs: number;
  if (config.pauseToleranceMs > 0) {
    minMs = Math.max(config.probeIntervalMs, config.pauseToleranceMs - config.probeTimeoutMs + config.gossipIntervalMs);
  } else {
    minMs = config.suspicionMult * Math.max(1, Math.log10(n)) * config.probeIntervalMs;
  }
  return { minMs, maxMs: config.suspicionMaxTimeoutMult * minMs };
}

/** The timeout after `confirmations` of `wanted`, between the bounds. */
export function suspicionTimeoutMs(confirmations: number, wanted: number, minMs: number, maxMs: number): number {
  if (wanted <= 0) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(wanted + 1);
  const timeout = maxMs - fraction * (maxMs - minMs);
  return Math.max(minMs, Math.floor(timeout));
}

/** One suspicion of one member: its start, its accusers and its current deadline. */
export class Suspicion {
  private readonly confirmers = new Set<string>();

  /**
   * @param firstAccuser the member whose suspicion started this; it never counts as a confirmation
   * @param confirmationsWanted k; 0 means the timeout is fixed at the minimum
   */
  constructor(
    readonly startMs: number,
    private readonly firstAccuser: string,
    private readonly confirmationsWanted: number,
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {}

  /** Records an independent confirmation; returns true if it was new and counted. */
  confirm(from: string): boolean {
    if (this.confirmers.size >= this.confirmationsWanted) return false;
    if (from === this.firstAccuser || this.confirmers.has(from)) return false;
    this.confirmers.add(from);
    return true;
  }

  /** Current deadline given the confirmations so far. */
  deadlineMs(): number {
    return this.startMs + suspicionTimeoutMs(this.confirmers.size, this.confirmationsWanted, this.minMs, this.maxMs);
  }
}

interface ActiveSuspicion {
  suspicion: Suspicion;
  timer: Timer<TimerKind>;
}

/** The suspicions a member holds about others, each with its timer. */
export class Suspicions {
  private readonly active = new Map<string, ActiveSuspicion>();

  constructor(private readonly ctx: Context) {}

  /** Starts (or restarts) the suspicion of `name`, first accused by `from`. */
  start(now: number, name: string, from: string): void {
    const config = this.ctx.config;
    const n = this.ctx.liveCount;
    const { minMs, maxMs } = suspicionTimeoutsMs(config, n);
    let wanted = config.lifeguard ? config.suspicionMult - 2 : 0;
    if (n - 2 < wanted) wanted = 0;
    this.arm(now, name, new Suspicion(now, from, wanted, minMs, config.lifeguard ? maxMs : minMs));
  }

  /** Another accuser at the same incarnation: true if it counted, and the deadline moved closer. */
  confirm(now: number, name: string, from: string): boolean {
    const active = this.active.get(name);
    if (active === undefined || !active.suspicion.confirm(from)) return false;
    this.arm(now, name, active.suspicion);
    return true;
  }

  /** The member is no longer suspect (refuted, dead, left). */
  end(name: string): void {
    const active = this.active.get(name);
    if (active === undefined) return;
    active.timer.cancelled = true;
    this.active.delete(name);
  }

  /**
   * A suspicion timer fired. Returns the slot of the member to declare dead, or -1: a stale
   * timer, or a deadline found long past after a stall, which waits once more so that a
   * refutation queued during the stall is read first.
   */
  expired(now: number, timer: Timer<TimerKind>, lateMs: number): Slot {
    const k = timer.kind as { name: string; deferred: boolean; verifying?: number };
    const active = this.active.get(k.name);
    const s = this.ctx.table.slotOf(k.name);
    if (active === undefined || active.timer !== timer || s < 0 || this.ctx.stateOf(s) !== MemberState.Suspect) return -1;
    if (!k.deferred && this.ctx.stalled(lateMs)) {
      active.timer = this.ctx.timers.schedule(now + STALL_GRACE_MS, { kind: 'suspicion', name: k.name, deferred: true });
      return -1;
    }
    const sent = k.verifying ?? 0;
    if (this.ctx.config.pauseToleranceMs > 0 && sent < VERIFY_ATTEMPTS) {
      this.verify(s);
      const step = this.ctx.config.probeTimeoutMs / VERIFY_ATTEMPTS;
      active.timer = this.ctx.timers.schedule(now + step, { kind: 'suspicion', name: k.name, deferred: true, verifying: sent + 1 });
      return -1;
    }
    return s;
  }

  /** Sends the suspicion itself to the suspect, bare: one that runs refutes and answers this member. */
  private verify(s: Slot): void {
    const ctx = this.ctx;
    const t = ctx.table;
    const suspect = encodeMessage({ type: MessageType.Suspect, node: t.names[s] as string, incarnation: t.incarnation[s] as number, from: ctx.name });
    ctx.counters.verifications++;
    ctx.send({ addr: t.addrs[s] as string, bytes: buildPacket([suspect]), stream: false });
  }

  private arm(now: number, name: string, suspicion: Suspicion): void {
    const previous = this.active.get(name);
    if (previous !== undefined) previous.timer.cancelled = true;
    const deadline = Math.max(now, suspicion.deadlineMs());
    this.active.set(name, { suspicion, timer: this.ctx.timers.schedule(deadline, { kind: 'suspicion', name, deferred: false }) });
  }
}
