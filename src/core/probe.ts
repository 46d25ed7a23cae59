/**
 * Failure detection (SWIM with Lifeguard). Every probe interval, scaled by local health, a
 * member pings the next member of its probe round. No ack within the probe timeout: it asks
 * `indirectChecks` random members to ping-req the target (each returns the ack, or a nack if the
 * target stays silent) and tries one ping over the stream path. No ack by the end of the
 * interval: the target becomes suspect. Missing nacks count against this member's own health,
 * as they show its own path is the problem. A probe timer found long past its deadline means
 * this member was stalled: it waits once more, briefly, so input queued during the stall lands
 * before it accuses anyone.
 *
 * This member also relays other members' ping-reqs, bounded by RELAYS_MAX.
 */
import { type Context, STALL_GRACE_MS, type TimerKind } from './context.js';
import type { Slot } from './member-table.js';
import { isLive } from './members.js';
import type { ProbeRound } from './probe-round.js';
import type { Timer } from './timers.js';
import type { Transitions } from './transitions.js';
import { encodeMessage, encodePacket, MemberState, MessageType, type PingMessage, type PingReqMessage } from './wire.js';

/** Ping-reqs this node relays at once; more are dropped so a flood cannot grow memory. */
const RELAYS_MAX = 1_024;

interface ProbeInFlight {
  /** The probed member's name: its slot may move if another member is removed meanwhile. */
  target: string;
  seq: number;
  /** When the ping went out, for the round-trip time of a direct ack. */
  sentMs: number;
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

export class Prober {
  private probe: ProbeInFlight | undefined;
  private readonly relays = new Map<number, Relay>();

  constructor(
    private readonly ctx: Context,
    private readonly round: ProbeRound,
    private readonly transitions: Transitions,
  ) {}

  /** The probe timer: close the last probe (suspecting its target if unanswered), start the next. */
  onTick(now: number, lateMs: number, deferred: boolean): void {
    const ctx = this.ctx;
    if (this.probe !== undefined && !this.probe.acked && !deferred && ctx.stalled(lateMs)) {
      ctx.timers.schedule(now + STALL_GRACE_MS, { kind: 'probe', deferred: true });
      return;
    }
    this.finish(now);
    if (!ctx.leaving) this.start(now);
    ctx.timers.schedule(now + ctx.awareness.scale(ctx.config.probeIntervalMs), { kind: 'probe', deferred: false });
  }

  /** No direct ack in time: probe indirectly through a few members, and once over the stream path. */
  onAckTimeout(now: number, timer: Timer<TimerKind>, lateMs: number): void {
    const ctx = this.ctx;
    const p = this.probe;
    if (p === undefined || p.acked || p.ackTimer !== timer) return;
    if (!(timer.kind as { deferred: boolean }).deferred && ctx.stalled(lateMs)) {
      p.ackTimer = ctx.timers.schedule(now + STALL_GRACE_MS, { kind: 'probe-ack', deferred: true });
      return;
    }
    p.ackTimer = undefined;
    p.indirect = true;
    ctx.counters.probesFailed++;
    const target = ctx.table.slotOf(p.target);
    const targetAddr = target < 0 ? undefined : ctx.table.addrs[target];
    if (targetAddr === undefined) return;
    const helpers = ctx.sample(ctx.config.indirectChecks, (s) => s !== target && ctx.stateOf(s) === MemberState.Alive && ctx.isVisible(s));
    ctx.counters.indirectProbes += helpers.length;
    for (const helper of helpers) {
      ctx.sendPacket(ctx.table.addrs[helper] as string, [encodeMessage({
        type: MessageType.PingReq, seq: p.seq, target: p.target, targetAddr, nack: true,
      })]);
    }
    p.nacksExpected = helpers.length;
    // The stream path gets through where only UDP is blocked or lossy (serf#216).
    ctx.sendStream(targetAddr, encodePacket([{ type: MessageType.Ping, seq: p.seq, target: p.target, source: ctx.name }]), 'ack');
  }

  /** A ping over UDP: ack it if it is for us (with gossip only to a member known at that address). */
  onPing(now: number, from: string, m: PingMessage): void {
    const ctx = this.ctx;
    if (m.target !== ctx.name) {
      ctx.drop(from, 'wrong-target', m.target);
      return;
    }
    const bodies = [encodeMessage({ type: MessageType.Ack, seq: m.seq })];
    // A member we hold dead or left is pinging us, so it runs: tell it our verdict on the ack,
    // and it refutes at once. (Gossip skips such members, and its broadcasts run out.)
    const s = m.source === undefined ? -1 : ctx.table.slotOf(m.source);
    const t = ctx.table;
    if (s > 0 && t.addrs[s] === from && !isLive(ctx.stateOf(s))) {
      const verdict = ctx.stateOf(s) === MemberState.Left ? MessageType.Left : MessageType.Dead;
      bodies.push(encodeMessage({ type: verdict, node: m.source as string, incarnation: t.incarnation[s] as number }));
    }
    ctx.sendAnswer(now, from, ctx.knownLiveAt(m.source, from), bodies);
  }

  /** A ping over the stream path: the ack frame to reply with, if it is for us. */
  streamPingReply(m: PingMessage): Uint8Array | undefined {
    return m.target === this.ctx.name ? encodePacket([{ type: MessageType.Ack, seq: m.seq }]) : undefined;
  }

  onAck(now: number, seq: number): void {
    const p = this.probe;
    if (p !== undefined && p.seq === seq && !p.acked) {
      p.acked = true;
      if (p.ackTimer !== undefined) p.ackTimer.cancelled = true;
      p.ackTimer = undefined;
      if (!p.indirect) {
        this.ctx.applyAwareness(-1);
        // Only a direct ack times the path: after the ack timeout it may come through a helper or the stream.
        this.ctx.probeRtt.observe(now - p.sentMs);
      }
    }
    const relay = this.relays.get(seq);
    if (relay !== undefined) {
      this.relays.delete(seq);
      this.ctx.sendAnswer(now, relay.requesterAddr, false, [encodeMessage({ type: MessageType.Ack, seq: relay.requesterSeq })]);
    }
  }

  onNack(seq: number): void {
    if (this.probe !== undefined && this.probe.seq === seq) this.probe.nacksReceived++;
  }

  /** Probes `m.target` for a requester, only if it is a live member known at `m.targetAddr`: never a third party. */
  onPingReq(now: number, from: string, m: PingReqMessage): void {
    const ctx = this.ctx;
    if (!ctx.knownLiveAt(m.target, m.targetAddr)) {
      ctx.drop(from, 'relay-unknown-target', m.target);
      return;
    }
    if (this.relays.size >= RELAYS_MAX) {
      ctx.drop(from, 'relay-limit');
      return;
    }
    const relaySeq = ctx.nextSeq();
    this.relays.set(relaySeq, { requesterAddr: from, requesterSeq: m.seq, nack: m.nack });
    ctx.sendPacket(m.targetAddr, [encodeMessage({ type: MessageType.Ping, seq: relaySeq, target: m.target, source: ctx.name })]);
    ctx.timers.schedule(now + this.relayNackDelayMs(), { kind: 'relay', seq: relaySeq });
  }

  /** The relayed target stayed silent: tell the requester with a nack, if it asked for one. */
  onRelayTimeout(now: number, seq: number): void {
    const relay = this.relays.get(seq);
    if (relay === undefined) return;
    this.relays.delete(seq);
    if (relay.nack) this.ctx.sendAnswer(now, relay.requesterAddr, false, [encodeMessage({ type: MessageType.Nack, seq: relay.requesterSeq })]);
  }

  /** Abandons the probe in flight (on leave), without judging its target. */
  cancel(): void {
    if (this.probe?.ackTimer !== undefined) this.probe.ackTimer.cancelled = true;
    this.probe = undefined;
  }

  private start(now: number): void {
    const ctx = this.ctx;
    const s = this.round.next(ctx.table.size, (slot) => ctx.isVisible(slot) && isLive(ctx.stateOf(slot)));
    if (s < 0) return;
    const t = ctx.table;
    const target = t.names[s] as string;
    const seq = ctx.nextSeq();
    const bodies: Uint8Array[] = [];
    if (ctx.config.lifeguard && ctx.stateOf(s) === MemberState.Suspect) {
      // Buddy system: tell the suspect directly so it can refute at once. The suspicion goes
      // first so the refutation is ready to ride back on the ack.
      bodies.push(encodeMessage({ type: MessageType.Suspect, node: target, incarnation: t.incarnation[s] as number, from: ctx.name }));
    }
    bodies.push(encodeMessage({ type: MessageType.Ping, seq, target, source: ctx.name }));
    ctx.sendPacket(t.addrs[s] as string, bodies);
    ctx.counters.probes++;
    const ackTimer = ctx.timers.schedule(now + ctx.awareness.scale(ctx.config.probeTimeoutMs), { kind: 'probe-ack', deferred: false });
    this.probe = { target, seq, sentMs: now, acked: false, indirect: false, nacksExpected: 0, nacksReceived: 0, ackTimer };
  }

  private finish(now: number): void {
    const p = this.probe;
    if (p === undefined) return;
    this.cancel();
    if (p.acked) return;
    const ctx = this.ctx;
    // Nacks prove our own path works, so missing ones count against our health (Lifeguard).
    const delta = p.nacksExpected > 0 ? Math.max(0, p.nacksExpected - p.nacksReceived) : 1;
    ctx.applyAwareness(delta);
    const s: Slot = ctx.table.slotOf(p.target);
    if (s < 0 || !isLive(ctx.stateOf(s))) return;
    this.transitions.onSuspect(now, p.target, ctx.table.incarnation[s] as number, ctx.name, true);
  }

  /**
   * How long a relay waits for the target before sending a nack. It must land inside the
   * requester's indirect window (probe interval minus probe timeout), or the requester blames
   * itself for nacks that were merely late; memberlist waits a full probe timeout, which at LAN
   * settings arrives after the window closes. 80% of the shorter span leaves room for latency.
   */
  private relayNackDelayMs(): number {
    const c = this.ctx.config;
    return 0.8 * Math.min(c.probeTimeoutMs, c.probeIntervalMs - c.probeTimeoutMs);
  }
}
