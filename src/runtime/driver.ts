/**
 * The driver: the runtime's counterpart of the simulator's drain loop. It feeds the core every
 * input with the current monotonic time, then drains it in the documented order (transmits to
 * the transport, events to the sink) and keeps exactly one unref'd timer armed for the core's
 * earliest deadline. Input that arrives while it drains (from an event listener) is applied at
 * once and drained in the same pass.
 */
import type { MembershipEvent } from '../core/context.js';
import type { Membership } from '../core/membership.js';
import { monotonicMs } from './system.js';
import type { Transport } from './transport.js';

export class Driver {
  private timer: NodeJS.Timeout | undefined;
  private timerDeadline = Number.POSITIVE_INFINITY;
  private pumping = false;
  private repump = false;
  private stopped = false;

  constructor(
    private readonly core: Membership,
    private readonly transport: Transport,
    private readonly onEvent: (event: MembershipEvent) => void,
  ) {
    transport.attach({
      datagram: (from, bytes) => this.input((now) => core.handleDatagram(now, from, bytes)),
      stream: (from, bytes) => {
        let reply: Uint8Array | undefined;
        this.input((now) => {
          reply = core.handleStream(now, from, bytes);
        });
        return reply;
      },
      streamReply: (from, bytes) => this.input((now) => core.handleStream(now, from, bytes)),
    });
  }

  /** Runs one input against the core, then drains it. Re-entrant calls (from listeners) are queued. */
  input(apply: (nowMs: number) => void): void {
    if (this.stopped) return;
    apply(monotonicMs());
    if (this.pumping) {
      this.repump = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.repump = false;
        this.drain();
      } while (this.repump);
    } finally {
      // Re-armed on every path: a listener that throws must not leave the core without its timer.
      this.pumping = false;
      this.arm();
    }
  }

  /** Takes no more input and disarms the timer (the transport is closed by its owner). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private drain(): void {
    const core = this.core;
    for (let t = core.pollTransmit(); t !== undefined; t = core.pollTransmit()) {
      if (t.stream) this.transport.sendStream(t.addr, t.bytes, t.replyBytesMax);
      else this.transport.sendDatagram(t.addr, t.bytes);
    }
    for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) this.onEvent(e);
  }

  /** Keeps exactly one unref'd timer, set for the core's earliest deadline. */
  private arm(): void {
    if (this.stopped) return;
    const deadline = this.core.pollTimeoutMs() ?? Number.POSITIVE_INFINITY;
    if (deadline === this.timerDeadline && this.timer !== undefined) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDeadline = deadline;
    if (deadline === Number.POSITIVE_INFINITY) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.input((now) => this.core.handleTimeout(now));
    }, Math.max(0, Math.ceil(deadline - monotonicMs())));
    this.timer.unref();
  }
}
