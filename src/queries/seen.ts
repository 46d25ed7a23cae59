/**
 * What makes a member answer each query once and no origin more than its share: the query
 * clock (a Lamport clock, serf/lamport.go), the buffer of queries seen (serf's queryBuffer in
 * handleQuery: one slot per Lamport time modulo its size, each holding the ids seen at that
 * time; a query older than the buffer is refused, as it could no longer be told from a repeat),
 * and a token bucket per origin (ours: serf has none).
 */

/** serf's QueryBuffer default (serf/config.go). */
export const SEEN_SLOTS = 512;
/** Queries one slot remembers; more at one Lamport time are refused, never answered twice. */
const IDS_PER_SLOT_MAX = 64;

export class LamportClock {
  private counter = 0;

  time(): number {
    return this.counter;
  }

  /** serf's LamportClock.Witness: afterwards the clock is past `t`. */
  witness(t: number): void {
    if (t >= this.counter) this.counter = Math.min(t + 1, Number.MAX_SAFE_INTEGER);
  }
}

export type Seen = 'new' | 'duplicate' | 'too-old' | 'slot-full';

export class SeenQueries {
  private readonly slots: ({ lamport: number; ids: string[] } | undefined)[] = new Array(SEEN_SLOTS);

  /** Records query (`lamport`, `key`) if it is new; `now` is the query clock after witnessing it. */
  check(clock: number, lamport: number, key: string): Seen {
    if (clock > SEEN_SLOTS && lamport < clock - SEEN_SLOTS) return 'too-old';
    const index = lamport % SEEN_SLOTS;
    let slot = this.slots[index];
    if (slot !== undefined && slot.lamport === lamport) {
      if (slot.ids.includes(key)) return 'duplicate';
      if (slot.ids.length >= IDS_PER_SLOT_MAX) return 'slot-full';
    } else {
      slot = { lamport, ids: [] };
      this.slots[index] = slot;
    }
    slot.ids.push(key);
    return 'new';
  }
}

/** Origins tracked at once; past this the idlest are forgotten (they start again with a full bucket). */
const ORIGINS_MAX = 4_096;

/** A token bucket per origin: `perSecond` queries a second, bursts up to `burst`. */
export class OriginRate {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(private readonly perSecond: number, private readonly burst: number) {}

  take(origin: string, nowMs: number): boolean {
    let b = this.buckets.get(origin);
    if (b === undefined) {
      if (this.buckets.size >= ORIGINS_MAX) this.forgetIdle(nowMs);
      b = { tokens: this.burst, atMs: nowMs };
    } else this.buckets.delete(origin);
    // Re-inserted on every use, so the map's order is least recently used first.
    this.buckets.set(origin, b);
    b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.atMs) / 1_000) * this.perSecond);
    b.atMs = nowMs;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private forgetIdle(nowMs: number): void {
    for (const [origin, b] of this.buckets) {
      if (this.buckets.size < ORIGINS_MAX && nowMs - b.atMs < 60_000) break;
      this.buckets.delete(origin);
    }
  }
}
