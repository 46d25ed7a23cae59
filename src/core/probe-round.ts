/**
 * The order in which a member probes the others: SWIM's shuffled round-robin, which bounds the
 * time until every member is probed (unlike picking at random each time). New members join the
 * current round at a random later position (memberlist does too); a removed member's place is
 * marked so the round can follow the member moved into its slot.
 */
import type { Slot } from './member-table.js';
import { type Rng, randomInt, shuffle } from './rng.js';

/** Extra probes prefer() may add to one round: a flood of suspicions must not stretch it without bound. */
const EXTRAS_MAX = 64;

export class ProbeRound {
  /** Slots in shuffled order; -1 marks a member removed mid-round. */
  private order: Slot[] = [];
  private index = 0;
  /** Slots prefer() inserted into this round. */
  private extras = 0;

  constructor(private readonly rng: Rng) {}

  /** The next slot accepted by `probeable`, reshuffling `1..tableSize-1` at the end of a round; -1 if none. */
  next(tableSize: number, probeable: (s: Slot) => boolean): Slot {
    for (let rounds = 0; rounds < 2; ) {
      if (this.index >= this.order.length) {
        const order: Slot[] = new Array<Slot>(tableSize - 1);
        for (let s = 1; s < tableSize; s++) order[s - 1] = s;
        this.order = shuffle(this.rng, order);
        this.index = 0;
        this.extras = 0;
        rounds++;
        if (this.order.length === 0) return -1;
      }
      const s = this.order[this.index++] as Slot;
      if (s >= 0 && probeable(s)) return s;
    }
    return -1;
  }

  /** A new member at slot `s` joins the current round at a random later position. */
  add(s: Slot): void {
    const order = this.order;
    order.push(s);
    const span = order.length - this.index;
    if (span > 1) {
      const j = this.index + randomInt(this.rng, span);
      order[order.length - 1] = order[j] as Slot;
      order[j] = s;
    }
  }

  /**
   * Probes `s` next. Still in this round: it swaps places with the next one; already probed in
   * it: it is probed once more, up to EXTRAS_MAX times a round. Every member is still probed at
   * least once per round.
   */
  prefer(s: Slot): void {
    const order = this.order;
    const j = order.indexOf(s, this.index);
    if (j < 0) {
      if (this.extras >= EXTRAS_MAX) return;
      this.extras++;
      order.splice(this.index, 0, s);
      return;
    }
    order[j] = order[this.index] as Slot;
    order[this.index] = s;
  }

  /** The member at `removed` is gone and the one at `moved` (if not -1) now sits in its slot. */
  removed(removed: Slot, moved: Slot): void {
    const order = this.order;
    for (let i = 0; i < order.length; i++) {
      if (order[i] === removed) order[i] = -1;
      else if (moved >= 0 && order[i] === moved) order[i] = removed;
    }
  }
}
