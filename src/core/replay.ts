/**
 * Replay protection for sealed traffic. A sealed packet's plaintext starts with a stamp that the
 * seal authenticates: which member sent it (a hash of its name), which run of that member
 * (`epoch`, growing across restarts: the runtime uses the wall clock at start), which channel
 * (datagrams or stream frames), and a counter that grows with every packet on that channel.
 *
 * A receiver keeps, per run of each sender and per channel, a sliding window of the last WINDOW
 * counters (IPsec's anti-replay window, RFC 4303 3.4.3, as WireGuard keeps one per peer): a
 * counter seen before, or older than the window, is a replay. A run it has not heard before
 * that is older than the sender's newest is a previous run's traffic. Only each sender's own values are compared, so hosts' clocks need not
 * agree. A member whose clock stepped back across a restart is accepted once nothing has been
 * heard from its newer run for EPOCH_SILENCE_MS. Without the key nobody can stamp, so only key
 * holders create receiver state, and it is bounded (SENDERS_MAX).
 */
import { sha512 } from '@noble/hashes/sha2.js';

/** channel (1) + sender (8) + epoch (8) + counter (8). */
export const REPLAY_STAMP_BYTES = 25;
/** Counters held per sender and channel: UDP reorders and streams interleave, a few hundred deep at most. */
const WINDOW = 1_024;
/** A sender's older epoch is accepted again after this long without hearing its newer one (a clock stepped back). */
const EPOCH_SILENCE_MS = 600_000;
/** An older run of a sender silent this long, while a newer one speaks, is a crashed one: refused from then on. */
const RUN_SILENCE_MS = 30_000;
/** Runs of senders tracked; the oldest is forgotten beyond this. */
const SENDERS_MAX = 65_536;

export type Channel = 0 | 1;
export const DATAGRAM_CHANNEL: Channel = 0;
export const STREAM_CHANNEL: Channel = 1;

export type ReplayVerdict = { ok: true; plain: Uint8Array } | { ok: false; reason: 'replay' | 'replay-old-epoch' | 'bad-stamp' };

function senderId(name: string): Uint8Array {
  return sha512(new TextEncoder().encode(name)).subarray(0, 8);
}

/** The sending side: stamps outgoing plaintexts of one member's run. */
export class ReplayStamp {
  private readonly sender: Uint8Array;
  private readonly counters = [0, 0];

  constructor(name: string, private readonly epoch: number) {
    this.sender = senderId(name);
  }

  stamp(plain: Uint8Array, channel: Channel): Uint8Array {
    const out = new Uint8Array(REPLAY_STAMP_BYTES + plain.length);
    const view = new DataView(out.buffer);
    out[0] = channel;
    out.set(this.sender, 1);
    view.setFloat64(9, this.epoch);
    view.setFloat64(17, ++(this.counters[channel] as number));
    out.set(plain, REPLAY_STAMP_BYTES);
    return out;
  }
}

class Window {
  highest = 0;
  private readonly seen = new Uint32Array(WINDOW / 32);

  /** True if `counter` is new; records it. */
  accept(counter: number): boolean {
    if (counter > this.highest) {
      const gap = counter - this.highest;
      if (gap >= WINDOW) this.seen.fill(0);
      else for (let c = this.highest + 1; c < counter; c++) this.clear(c);
      this.highest = counter;
      this.set(counter);
      return true;
    }
    if (this.highest - counter >= WINDOW || this.has(counter)) return false;
    this.set(counter);
    return true;
  }

  private has(c: number): boolean {
    const bit = c % WINDOW;
    return ((this.seen[bit >>> 5] as number) & (1 << (bit & 31))) !== 0;
  }
  private set(c: number): void {
    const bit = c % WINDOW;
    this.seen[bit >>> 5] = (this.seen[bit >>> 5] as number) | (1 << (bit & 31));
  }
  private clear(c: number): void {
    const bit = c % WINDOW;
    this.seen[bit >>> 5] = (this.seen[bit >>> 5] as number) & ~(1 << (bit & 31));
  }
}

interface RunState {
  lastSeenMs: number;
  windows: [Window, Window];
}

/** The receiving side: refuses what a sender already sent, or sent in an older run. */
export class ReplayGuard {
  /** Per run of a sender (name hash and epoch). */
  private readonly runs = new Map<string, RunState>();
  /** Per sender (name hash): its newest epoch seen, and the key of that run. */
  private readonly newest = new Map<string, { epoch: number; run: string }>();

  /** Checks an opened (authenticated) plaintext; returns what follows the stamp. */
  check(nowMs: number, stamped: Uint8Array): ReplayVerdict {
    if (stamped.length < REPLAY_STAMP_BYTES) return { ok: false, reason: 'bad-stamp' };
    const channel = stamped[0];
    const view = new DataView(stamped.buffer, stamped.byteOffset, REPLAY_STAMP_BYTES);
    const epoch = view.getFloat64(9);
    const counter = view.getFloat64(17);
    if ((channel !== 0 && channel !== 1) || !Number.isSafeInteger(epoch) || !Number.isSafeInteger(counter) || counter < 1) {
      return { ok: false, reason: 'bad-stamp' };
    }
    let sender = '';
    for (let i = 1; i < 9; i++) sender += String.fromCharCode(stamped[i] as number);
    const key = `${sender}/${epoch}`;
    let run = this.runs.get(key);
    const top = this.newest.get(sender);
    if (run !== undefined && top !== undefined && epoch < top.epoch && nowMs - run.lastSeenMs > RUN_SILENCE_MS) {
      // A previous run that fell silent once a newer one spoke: it crashed, and this is a replay.
      return { ok: false, reason: 'replay-old-epoch' };
    }
    if (run === undefined) {
      // A run not heard before: a restart (newer epoch), or an older run we never heard, which
      // is refused unless the newest run has gone silent (its host's clock may have stepped back).
      // Runs already heard stay accepted side by side: two live processes with one name must
      // hear each other to settle who keeps it.
      if (top !== undefined && epoch < top.epoch && nowMs - (this.runs.get(top.run)?.lastSeenMs ?? -Infinity) < EPOCH_SILENCE_MS) {
        return { ok: false, reason: 'replay-old-epoch' };
      }
      if (this.runs.size >= SENDERS_MAX) this.runs.delete(this.runs.keys().next().value as string);
      if (this.newest.size >= SENDERS_MAX) this.newest.delete(this.newest.keys().next().value as string);
      run = { lastSeenMs: nowMs, windows: [new Window(), new Window()] };
      this.runs.set(key, run);
      if (top === undefined || epoch > top.epoch || !this.runs.has(top.run)) this.newest.set(sender, { epoch, run: key });
      else if (epoch < top.epoch) this.newest.set(sender, { epoch, run: key }); // the newest run fell silent: this one takes over
    }
    if (!run.windows[channel].accept(counter)) return { ok: false, reason: 'replay' };
    run.lastSeenMs = nowMs;
    return { ok: true, plain: stamped.subarray(REPLAY_STAMP_BYTES) };
  }
}
